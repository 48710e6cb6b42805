import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { decodeWorkerFrame, encodeFrame } from '../protocol/codec.js';
import { CloseCode, PROTOCOL_VERSION, type ControlFrame, type WorkerFrame } from '../protocol/messages.js';
import type { Store } from '../storage/store.js';
import type { LogCollector } from './log-collector.js';
import type { NodeRegistry, WorkerNode } from './node-registry.js';

/** A worker's control link, as relayed by the scheduler core whose listener accepted it. */
interface Conn {
  conn: number;
  core: number;
  remote: string;
  node: WorkerNode | undefined;
  closed: boolean;
  helloTimer: NodeJS.Timeout | undefined;
}

export interface WorkerGatewayOptions {
  log: Logger;
  store: Store;
  nodes: NodeRegistry;
  /** Write to / close a relayed connection (through the core that holds its socket). */
  write(core: number, conn: number, data: Uint8Array): void;
  end(core: number, conn: number, code: number, reason: string): void;
  /** The data-link port of each scheduler core, core 0 first (named in the welcome). */
  linkPorts: () => readonly number[];
  onBadFrame(): void;
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
 * The workers' control links, on the main thread: hello/welcome, heartbeats,
 * draining, bundles (from SQLite) and logs. The sockets live on the scheduler
 * cores (a connection reaches whichever core's listener the kernel picked; the
 * core checks the join token and relays the frames here). The first frame
 * must be `hello` with our protocol version; every frame is validated and a
 * bad one closes that connection only, with a logged reason. Frames about
 * sandboxes and calls travel on the data links, straight to the cores.
 */
export class WorkerGateway {
  private readonly conns = new Map<number, Conn>();
  private readonly sockets = new Map<WorkerNode, Conn>();
  private readonly log: Logger;

  constructor(private readonly opts: WorkerGatewayOptions) {
    this.log = opts.log;
  }

  opened(core: number, conn: number, remote: string): void {
    const c: Conn = { conn, core, remote, node: undefined, closed: false, helloTimer: undefined };
    c.helloTimer = setTimeout(() => this.reject(c, CloseCode.badFrame, 'no hello within the handshake timeout'), this.opts.helloTimeoutMs ?? 10_000);
    this.conns.set(conn, c);
  }

  message(conn: number, data: Uint8Array, binary: boolean): void {
    const c = this.conns.get(conn);
    if (c === undefined || c.closed) return;
    if (!binary) {
      this.reject(c, CloseCode.badFrame, 'text frame; the protocol is binary msgpack');
      return;
    }
    let frame: WorkerFrame;
    try {
      frame = decodeWorkerFrame(data);
    } catch (e) {
      this.reject(c, CloseCode.badFrame, (e as Error).message);
      return;
    }
    try {
      this.handle(c, frame);
    } catch (e) {
      if (e instanceof BatonError && e.code === 'no_capacity') {
        this.reject(c, CloseCode.shuttingDown, e.message);
        return;
      }
      this.log.error({ err: e, node: c.node?.name, t: frame.t }, 'error handling a worker frame');
      this.reject(c, CloseCode.badFrame, e instanceof BatonError ? e.message : 'internal error handling the frame');
    }
  }

  closed(conn: number, code: number, reason: string): void {
    const c = this.conns.get(conn);
    if (c === undefined) return;
    this.conns.delete(conn);
    c.closed = true;
    if (c.helloTimer !== undefined) clearTimeout(c.helloTimer);
    const node = c.node;
    if (node !== undefined && this.sockets.get(node) === c) {
      this.sockets.delete(node);
      this.opts.nodes.disconnected(node, `closed with ${code} ${reason}`.trim());
    }
  }

  /** A data link of this node went down: the worker joins again from scratch. */
  linkLost(node: WorkerNode, reason: string): void {
    const c = this.sockets.get(node);
    this.opts.nodes.disconnected(node, reason);
    if (c !== undefined) {
      this.sockets.delete(node);
      c.node = undefined;
      this.reject(c, CloseCode.normal, reason);
    }
  }

  private reject(c: Conn, code: number, reason: string): void {
    if (c.closed) return;
    if (code === CloseCode.badFrame) this.opts.onBadFrame();
    this.log.warn({ remote: c.remote, node: c.node?.name, code, reason }, 'closing worker connection');
    // Close reasons are limited to 123 bytes by the WebSocket protocol.
    this.opts.end(c.core, c.conn, code, reason.slice(0, 120));
  }

  private handle(c: Conn, f: WorkerFrame): void {
    const node = c.node;
    if (node === undefined) {
      if (f.t !== 'hello') {
        this.reject(c, CloseCode.badFrame, `expected hello first, got ${f.t}`);
        return;
      }
      if (f.protocol !== PROTOCOL_VERSION) {
        this.reject(c, CloseCode.wrongVersion, `protocol version ${f.protocol} not supported; this control plane speaks ${PROTOCOL_VERSION}`);
        return;
      }
      if (c.helloTimer !== undefined) clearTimeout(c.helloTimer);
      this.welcome(c, f);
      return;
    }
    switch (f.t) {
      case 'hello':
        this.reject(c, CloseCode.badFrame, 'hello sent twice');
        return;
      case 'heartbeat':
        this.opts.nodes.heartbeat(node, f);
        return;
      case 'draining':
        this.opts.nodes.draining(node, f.timeoutMs);
        return;
      case 'getBundle': {
        const data = this.opts.store.getBundle(f.hash);
        this.send(c, data === undefined ? { t: 'bundle', hash: f.hash, error: { code: 'not_found', message: `no bundle ${f.hash}` } } : { t: 'bundle', hash: f.hash, data });
        return;
      }
      case 'logs':
        this.opts.logs?.answer(node, f);
        return;
      default:
        this.reject(c, CloseCode.badFrame, `a ${f.t} frame belongs on a data link (to the scheduler core that owns the sandbox), not on the control link`);
    }
  }

  private welcome(c: Conn, hello: Extract<WorkerFrame, { t: 'hello' }>): void {
    const existing = this.opts.nodes.get(hello.nodeId);
    const old = existing === undefined ? undefined : this.sockets.get(existing);
    if (old !== undefined && old !== c) {
      // Same node identity on a new connection: the old one is stale.
      this.sockets.delete(existing as WorkerNode);
      old.node = undefined;
      this.reject(old, CloseCode.replaced, 'replaced by a newer connection of the same node');
    }
    const node = this.opts.nodes.connect(hello, (frame) => this.send(c, frame));
    c.node = node;
    this.sockets.set(node, c);
    const links = this.opts.linkPorts().map((port, core) => ({ core, port }));
    this.send(c, { t: 'welcome', protocol: PROTOCOL_VERSION, nodeId: node.id, heartbeatMs: this.opts.heartbeatMs, maxResponseBytes: this.opts.maxResponseBytes, maxCallBodyBytes: this.opts.maxCallBodyBytes, classes: [...this.opts.classes], drop: [], session: node.session, links });
    this.log.debug({ node: node.name, nodeId: node.id, session: node.session, reported: hello.sandboxes.length }, 'worker said hello; waiting for its data links');
  }

  /** Every scheduler core has the node's data link: it is ready. */
  joined(node: WorkerNode): void {
    this.log.info({ node: node.name, nodeId: node.id, cores: node.cores, memoryMb: node.memoryMb, runtime: node.runtime, adopted: node.adopted, dropped: node.dropped }, 'worker joined');
  }

  private send(c: Conn, frame: ControlFrame): boolean {
    if (c.closed) return false;
    this.opts.write(c.core, c.conn, encodeFrame(frame));
    return true;
  }

  /** A node declared dead while its socket is still open (hung worker): close it. */
  closeNode(node: WorkerNode, reason: string): void {
    const c = this.sockets.get(node);
    if (c === undefined) return;
    this.sockets.delete(node);
    c.node = undefined;
    this.reject(c, CloseCode.normal, reason);
  }
}
