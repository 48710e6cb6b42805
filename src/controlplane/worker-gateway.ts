import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { NodeState } from '../dataplane/types.js';
import { decodeWorkerFrame, encodeFrame, MAX_FRAME_BYTES } from '../protocol/codec.js';
import { CloseCode, PROTOCOL_VERSION, WORKER_PATH, type ControlFrame, type WorkerFrame } from '../protocol/messages.js';
import type { Store } from '../storage/store.js';
import { tokenMatches } from './auth.js';
import type { ChainCalls } from './chain-calls.js';
import type { LogCollector } from './log-collector.js';
import type { ControlPlaneMetrics } from './metrics.js';
import type { NodeRegistry } from './node-registry.js';

interface Conn {
  remote: string;
  node: NodeState | undefined;
  closed: boolean;
  helloTimer: NodeJS.Timeout | undefined;
}

export interface WorkerGatewayOptions {
  log: Logger;
  store: Store;
  nodes: NodeRegistry;
  dispatcher: Dispatcher;
  /** Chain calls (`ctx.invoke`) the workers' functions make. */
  chains: ChainCalls;
  metrics: ControlPlaneMetrics;
  joinTokenHash: () => string;
  heartbeatMs: number;
  /** Largest response body a call may return (the worker fails bigger ones on its side). */
  maxResponseBytes: number;
  /** Largest body of a chain call (the worker refuses bigger ones on its side). */
  maxCallBodyBytes: number;
  /** Price class names, cheapest first. */
  classes: readonly string[];
  helloTimeoutMs?: number;
  /** Given the workers' answers to getLogs. */
  logs?: Pick<LogCollector, 'answer'>;
}

/**
 * The workers' WebSocket endpoint. Join token checked at upgrade; the first
 * frame must be `hello` with our protocol version; every frame is validated and
 * a bad one closes that connection only, with a logged reason.
 */
export class WorkerGateway {
  private readonly sockets = new Map<NodeState, WebSocket<Conn>>();
  private readonly log: Logger;

  constructor(private readonly opts: WorkerGatewayOptions) {
    this.log = opts.log;
  }

  mount(app: TemplatedApp): void {
    app.ws<Conn>(WORKER_PATH, {
      maxPayloadLength: MAX_FRAME_BYTES,
      maxBackpressure: MAX_FRAME_BYTES,
      idleTimeout: 0,
      upgrade: (res, req, context) => {
        const auth = req.getHeader('authorization');
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
        const m = /^Bearer\s+(\S+)$/i.exec(auth);
        if (m === null || !tokenMatches(m[1] ?? '', this.opts.joinTokenHash())) {
          this.log.warn({ remote }, 'worker rejected: missing or wrong join token');
          res.writeStatus('401 Unauthorized').writeHeader('content-type', 'application/json');
          res.end(JSON.stringify({ error: { code: 'unauthorized', message: 'worker join token missing or wrong' } }));
          return;
        }
        res.upgrade<Conn>({ remote, node: undefined, closed: false, helloTimer: undefined }, key, protocol, extensions, context);
      },
      open: (ws) => {
        const c = ws.getUserData();
        c.helloTimer = setTimeout(() => this.reject(ws, CloseCode.badFrame, 'no hello within the handshake timeout'), this.opts.helloTimeoutMs ?? 10_000);
      },
      message: (ws, message, isBinary) => {
        const c = ws.getUserData();
        if (c.closed) return;
        if (!isBinary) {
          this.reject(ws, CloseCode.badFrame, 'text frame; the protocol is binary msgpack');
          return;
        }
        let frame: WorkerFrame;
        try {
          // uWS reuses the buffer after this callback; decode a copy so binary fields stay valid.
          frame = decodeWorkerFrame(new Uint8Array(message.slice(0)));
        } catch (e) {
          this.reject(ws, CloseCode.badFrame, (e as Error).message);
          return;
        }
        try {
          this.handle(ws, c, frame);
        } catch (e) {
          this.log.error({ err: e, node: c.node?.name, t: frame.t }, 'error handling a worker frame');
          this.reject(ws, CloseCode.badFrame, e instanceof BatonError ? e.message : 'internal error handling the frame');
        }
      },
      close: (ws, code, message) => {
        const c = ws.getUserData();
        c.closed = true;
        if (c.helloTimer !== undefined) clearTimeout(c.helloTimer);
        const node = c.node;
        if (node !== undefined && this.sockets.get(node) === ws) {
          this.sockets.delete(node);
          this.opts.nodes.disconnected(node, `closed with ${code} ${Buffer.from(message).toString()}`.trim());
        }
      },
    });
  }

  private reject(ws: WebSocket<Conn>, code: number, reason: string): void {
    const c = ws.getUserData();
    if (c.closed) return;
    if (code === CloseCode.badFrame) this.opts.metrics.badFrames.inc();
    this.log.warn({ remote: c.remote, node: c.node?.name, code, reason }, 'closing worker connection');
    // Close reasons are limited to 123 bytes by the WebSocket protocol.
    ws.end(code, reason.slice(0, 120));
  }

  private handle(ws: WebSocket<Conn>, c: Conn, f: WorkerFrame): void {
    const node = c.node;
    if (node === undefined) {
      if (f.t !== 'hello') {
        this.reject(ws, CloseCode.badFrame, `expected hello first, got ${f.t}`);
        return;
      }
      if (f.protocol !== PROTOCOL_VERSION) {
        this.reject(ws, CloseCode.wrongVersion, `protocol version ${f.protocol} not supported; this control plane speaks ${PROTOCOL_VERSION}`);
        return;
      }
      if (c.helloTimer !== undefined) clearTimeout(c.helloTimer);
      this.welcome(ws, c, f);
      return;
    }
    switch (f.t) {
      case 'hello':
        this.reject(ws, CloseCode.badFrame, 'hello sent twice');
        return;
      case 'heartbeat':
        this.opts.nodes.heartbeat(node, f);
        return;
      case 'sandboxReady':
        this.opts.dispatcher.sandboxReady(node, f.sandboxId, f.createMs, f.pid);
        return;
      case 'sandboxFailed':
        this.opts.dispatcher.sandboxFailed(node, f.sandboxId, BatonError.fromWire(f.error).toWire());
        return;
      case 'sandboxGone': {
        const sb = this.opts.dispatcher.sandboxOn(node, f.sandboxId);
        if (sb !== undefined) this.opts.dispatcher.sandboxLost(sb, f.reason);
        return;
      }
      case 'result':
        this.opts.dispatcher.result(node, f);
        return;
      case 'draining':
        this.opts.nodes.draining(node, f.timeoutMs);
        return;
      case 'call':
        this.opts.chains.handle(node, f);
        return;
      case 'getBundle': {
        const data = this.opts.store.getBundle(f.hash);
        // only real bundles count for code locality (a worker asking for random hashes grows nothing)
        if (data !== undefined) node.bundles.add(f.hash);
        this.send(ws, data === undefined ? { t: 'bundle', hash: f.hash, error: { code: 'not_found', message: `no bundle ${f.hash}` } } : { t: 'bundle', hash: f.hash, data });
        return;
      }
      case 'logs':
        this.opts.logs?.answer(node, f);
        return;
    }
  }

  private welcome(ws: WebSocket<Conn>, c: Conn, hello: Extract<WorkerFrame, { t: 'hello' }>): void {
    const existing = this.opts.nodes.get(hello.nodeId);
    const old = existing === undefined ? undefined : this.sockets.get(existing);
    if (old !== undefined && old !== ws) {
      // Same node identity on a new connection: the old one is stale.
      this.sockets.delete(existing as NodeState);
      old.getUserData().node = undefined;
      this.reject(old, CloseCode.replaced, 'replaced by a newer connection of the same node');
    }
    const node = this.opts.nodes.connect(hello, (frame) => this.send(ws, frame));
    c.node = node;
    this.sockets.set(node, ws);
    const drop: string[] = [];
    for (const report of hello.sandboxes) if (!this.opts.dispatcher.adopt(node, report)) drop.push(report.sandboxId);
    this.send(ws, { t: 'welcome', protocol: PROTOCOL_VERSION, nodeId: node.id, heartbeatMs: this.opts.heartbeatMs, maxResponseBytes: this.opts.maxResponseBytes, maxCallBodyBytes: this.opts.maxCallBodyBytes, classes: [...this.opts.classes], drop });
    this.log.info(
      { node: node.name, nodeId: node.id, cores: node.cores, memoryMb: node.memoryMb, runtime: node.runtime, adopted: hello.sandboxes.length - drop.length, dropped: drop.length },
      'worker joined',
    );
    this.opts.dispatcher.retryWaiting();
  }

  private send(ws: WebSocket<Conn>, frame: ControlFrame): boolean {
    const c = ws.getUserData();
    if (c.closed) return false;
    return ws.send(encodeFrame(frame), true) !== 2;
  }

  /** A node declared dead while its socket is still open (hung worker): close it. */
  closeNode(node: NodeState, reason: string): void {
    const ws = this.sockets.get(node);
    if (ws === undefined) return;
    this.sockets.delete(node);
    ws.getUserData().node = undefined;
    this.reject(ws, CloseCode.normal, reason);
  }

  closeAll(): void {
    for (const [node, ws] of [...this.sockets]) {
      this.sockets.delete(node);
      ws.getUserData().node = undefined;
      ws.end(CloseCode.shuttingDown, 'control plane shutting down');
    }
  }
}
