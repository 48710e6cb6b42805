import uws, { type TemplatedApp, type WebSocket } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import { decodeWorkerFrame, encodeFrame, MAX_FRAME_BYTES } from '../protocol/codec.js';
import { CloseCode, LINK_PATH, PROTOCOL_VERSION, type ControlFrame, type LinkHelloFrame, type WorkerFrame } from '../protocol/messages.js';
import { upgradeWorker } from './worker-upgrade.js';
import type { ChainCalls } from '../controlplane/chain-calls.js';
import { closeApp } from '../controlplane/http-kit.js';
import type { NodeMirror } from './node-mirror.js';

interface Link {
  remote: string;
  node: NodeMirror | undefined;
  closed: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Said linkHello for a session no worker is known by (yet): waiting for the main thread's nodeJoined. */
  parked: string | undefined;
}

export interface CoreLinksOptions {
  index: number;
  log: Logger;
  joinTokenHash: string;
  dispatcher: Dispatcher;
  chains: ChainCalls;
  /** The worker of this session, once the main thread announced it. */
  nodeOfSession(session: string): NodeMirror | undefined;
  /** A link is up (adopted/dropped: its report) or went down. */
  onLinkUp(node: NodeMirror, adopted: number, dropped: number): void;
  onLinkDown(node: NodeMirror, reason: string): void;
  onBadFrame(): void;
  /** How long a new link may wait for its linkHello, and for the main thread to announce its worker. */
  helloTimeoutMs?: number;
  /** The app to serve links on (default: a new uWS app; the memory benchmark passes one without sockets). */
  app?: TemplatedApp;
}

/**
 * This scheduler core's data links: every worker opens one to every core
 * (after the control link's welcome named the port), and every frame about
 * this core's sandboxes and calls travels on it, so results come back to the
 * core that dispatched (protocol in src/protocol/messages.ts, LINK_PATH).
 * A link starts with `linkHello` naming the worker session the main thread
 * announced (nodeJoined); the sandboxes it reports are adopted here (a
 * control-plane restart), and `linkWelcome` tells the worker which to drop.
 * A bad frame closes that link only; the worker then joins again.
 */
export class CoreLinks {
  private readonly app: TemplatedApp;
  private listenSocket: uws.us_listen_socket | undefined;
  private readonly sockets = new Set<WebSocket<Link>>();
  /** Links whose linkHello came before the main thread's nodeJoined for their session. */
  private readonly parked = new Map<string, { ws: WebSocket<Link>; hello: LinkHelloFrame }>();
  private readonly log: Logger;

  constructor(private readonly o: CoreLinksOptions) {
    this.log = o.log;
    this.app = o.app ?? uws.App();
    this.app.ws<Link>(LINK_PATH, {
      maxPayloadLength: MAX_FRAME_BYTES,
      maxBackpressure: MAX_FRAME_BYTES,
      idleTimeout: 0,
      upgrade: (res, req, context) => upgradeWorker<Link>(res, req, context, o.joinTokenHash, this.log, 'data link', (remote) => ({ remote, node: undefined, closed: false, timer: undefined, parked: undefined })),
      open: (ws) => {
        this.sockets.add(ws);
        const l = ws.getUserData();
        l.timer = setTimeout(() => {
          const why = l.parked === undefined ? 'no linkHello within the handshake timeout' : `linkHello names session ${l.parked}, which no joining worker has (joined again since?)`;
          this.reject(ws, CloseCode.badFrame, why);
        }, o.helloTimeoutMs ?? 10_000);
      },
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      close: (ws, code, message) => {
        this.sockets.delete(ws);
        const l = ws.getUserData();
        l.closed = true;
        if (l.timer !== undefined) clearTimeout(l.timer);
        for (const [session, p] of this.parked) if (p.ws === ws) this.parked.delete(session);
        const node = l.node;
        if (node !== undefined && node.linked) {
          node.linked = false;
          node.send = () => false;
          o.onLinkDown(node, `data link to core ${o.index} closed with ${code} ${Buffer.from(message).toString()}`.trim());
        }
      },
    });
  }

  /** Listen on an ephemeral port of `host`; resolves with the port. */
  listen(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, 0, (s) => {
        if (s === false) {
          reject(new BatonError('conflict', `scheduler core ${this.o.index}: cannot listen for worker links on ${host}`));
          return;
        }
        this.listenSocket = s;
        resolve(uws.us_socket_local_port(s));
      });
    });
  }

  /** The main thread announced a worker session: a link that said hello first is bound now. */
  nodeAnnounced(session: string): void {
    const p = this.parked.get(session);
    if (p === undefined) return;
    this.parked.delete(session);
    if (!p.ws.getUserData().closed) this.bind(p.ws, p.hello);
  }

  /** Close a worker's link (its worker left, or was replaced). */
  drop(node: NodeMirror, reason: string): void {
    for (const ws of this.sockets) {
      if (ws.getUserData().node === node) {
        ws.getUserData().node = undefined;
        node.linked = false;
        node.send = () => false;
        this.reject(ws, CloseCode.normal, reason);
      }
    }
  }

  close(): void {
    if (this.listenSocket !== undefined) uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    for (const ws of [...this.sockets]) {
      ws.getUserData().node = undefined;
      ws.getUserData().closed = true;
      ws.end(CloseCode.shuttingDown, 'control plane shutting down');
    }
    this.sockets.clear();
    if (this.o.app === undefined) closeApp(this.app);
  }

  private reject(ws: WebSocket<Link>, code: number, reason: string): void {
    const l = ws.getUserData();
    if (l.closed) return;
    if (code === CloseCode.badFrame) this.o.onBadFrame();
    this.log.warn({ remote: l.remote, node: l.node?.name, code, reason }, 'closing worker data link');
    ws.end(code, reason.slice(0, 120));
  }

  private message(ws: WebSocket<Link>, message: ArrayBuffer, isBinary: boolean): void {
    const l = ws.getUserData();
    if (l.closed) return;
    if (!isBinary) {
      this.reject(ws, CloseCode.badFrame, 'text frame; the protocol is binary msgpack');
      return;
    }
    let f: WorkerFrame;
    try {
      // uWS reuses the buffer after this callback; decode a copy so binary fields stay valid
      f = decodeWorkerFrame(new Uint8Array(message.slice(0)));
    } catch (e) {
      this.reject(ws, CloseCode.badFrame, (e as Error).message);
      return;
    }
    try {
      this.handle(ws, l, f);
    } catch (e) {
      this.log.error({ err: e, node: l.node?.name, t: f.t }, 'error handling a frame on a data link');
      this.reject(ws, CloseCode.badFrame, e instanceof BatonError ? e.message : 'internal error handling the frame');
    }
  }

  private handle(ws: WebSocket<Link>, l: Link, f: WorkerFrame): void {
    const node = l.node;
    if (node === undefined) {
      if (f.t !== 'linkHello') {
        this.reject(ws, CloseCode.badFrame, `expected linkHello first on a data link, got ${f.t}`);
        return;
      }
      if (f.protocol !== PROTOCOL_VERSION) {
        this.reject(ws, CloseCode.wrongVersion, `protocol version ${f.protocol} not supported; this control plane speaks ${PROTOCOL_VERSION}`);
        return;
      }
      if (f.core !== this.o.index) {
        this.reject(ws, CloseCode.badFrame, `linkHello for core ${f.core} reached core ${this.o.index}`);
        return;
      }
      if (this.o.nodeOfSession(f.session) === undefined) {
        // the main thread's announcement may still be on its way
        const before = this.parked.get(f.session);
        if (before !== undefined) this.reject(before.ws, CloseCode.replaced, 'replaced by a newer data link of the same session');
        this.parked.set(f.session, { ws, hello: f });
        l.parked = f.session;
        return;
      }
      this.bind(ws, f);
      return;
    }
    const d = this.o.dispatcher;
    switch (f.t) {
      case 'result':
        d.result(node, f);
        return;
      case 'sandboxReady':
        d.sandboxReady(node, f.sandboxId, f.createMs, f.pid);
        return;
      case 'sandboxFailed':
        d.sandboxFailed(node, f.sandboxId, BatonError.fromWire(f.error).toWire());
        return;
      case 'sandboxGone': {
        const sb = d.sandboxOn(node, f.sandboxId);
        if (sb !== undefined) d.sandboxLost(sb, f.reason);
        return;
      }
      case 'call':
        this.o.chains.handle(node, f);
        return;
      case 'linkHello':
        this.reject(ws, CloseCode.badFrame, 'linkHello sent twice on a data link');
        return;
      default:
        this.reject(ws, CloseCode.badFrame, `a ${f.t} frame belongs on the control link, not on a data link`);
    }
  }

  private bind(ws: WebSocket<Link>, hello: LinkHelloFrame): void {
    const l = ws.getUserData();
    const node = this.o.nodeOfSession(hello.session);
    if (node === undefined || node.id !== hello.nodeId || !node.current) {
      this.reject(ws, CloseCode.badFrame, `no worker ${hello.nodeId} with session ${hello.session} is joining (joined again since?)`);
      return;
    }
    if (node.linked) {
      this.reject(ws, CloseCode.replaced, `worker ${node.name} already has a data link to core ${this.o.index}`);
      return;
    }
    if (l.timer !== undefined) clearTimeout(l.timer);
    l.timer = undefined;
    l.parked = undefined;
    l.node = node;
    node.linked = true;
    const send = (frame: ControlFrame): boolean => !l.closed && ws.send(encodeFrame(frame), true) !== 2;
    // adopting a sandbox gives it the calls waiting for it at once: those frames follow the linkWelcome
    const early: ControlFrame[] = [];
    node.send = (frame) => {
      early.push(frame);
      return true;
    };
    const drop: string[] = [];
    for (const report of hello.sandboxes) if (!this.o.dispatcher.adopt(node, report)) drop.push(report.sandboxId);
    node.send = send;
    send({ t: 'linkWelcome', core: this.o.index, drop });
    for (const f of early) send(f);
    this.o.onLinkUp(node, hello.sandboxes.length - drop.length, drop.length);
  }
}
