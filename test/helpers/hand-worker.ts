import WebSocket from 'ws';
import { decodeControlFrame, encodeFrame, MAX_FRAME_BYTES } from '../../src/protocol/codec.js';
import {
  LINK_PATH,
  PROTOCOL_VERSION,
  WORKER_PATH,
  type ControlFrame,
  type HelloFrame,
  type LinkHelloFrame,
  type LinkWelcomeFrame,
  type WelcomeFrame,
  type WorkerFrame,
} from '../../src/protocol/messages.js';
import { ownerCore } from '../../src/protocol/shard.js';

/** A connection of the worker: its control link, or its data link to scheduler core k. */
export type LinkId = 'control' | number;
export interface Received {
  link: LinkId;
  frame: ControlFrame;
}
export interface Closed {
  code: number;
  reason: string;
}

/** One WebSocket to the control plane with the join token; usable on its own (e.g. a second link to a core). */
export class Socket {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<Closed>;
  /** How it closed, once it has. */
  closedWith: Closed | undefined;

  constructor(url: string, joinToken: string, onFrame: (data: Buffer) => void = () => undefined) {
    this.ws = new WebSocket(url, { headers: { authorization: `Bearer ${joinToken}` }, maxPayload: MAX_FRAME_BYTES * 2, perMessageDeflate: false });
    this.opened = new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise<Closed>((resolve) => {
      this.ws.once('close', (code, reason) => resolve((this.closedWith = { code, reason: reason.toString() })));
    });
    this.ws.on('error', () => undefined); // reported as the close
    this.ws.on('message', onFrame);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(data: Uint8Array | string, binary = true): void {
    // after a close this is a no-op (the callback takes the error) rather than a throw
    this.ws.send(data, { binary }, () => undefined);
  }
}

/**
 * A worker that speaks the protocol by hand (src/protocol/messages.ts), for
 * tests that need to say things a real worker never would. It opens the
 * control link at once; `join()` says hello, opens one data link per
 * scheduler core named in the welcome, sends each its linkHello and waits for
 * every linkWelcome. Every frame received is recorded with the link it came
 * on. `send` routes a frame as a real worker would; `sendRaw` puts any bytes
 * on any link. It heartbeats on the control link once welcomed (the test
 * control planes declare a worker dead after 2 s of silence).
 */
export class HandWorker {
  readonly frames: Received[] = [];
  /** Frames from the control plane that are not valid control frames (there should be none). */
  readonly undecodable: string[] = [];
  readonly nodeId: string;
  welcome: WelcomeFrame | undefined;
  /** Called with every frame received, after it is recorded (to answer creates and invokes, say). */
  onFrame: ((r: Received) => void) | undefined;
  readonly control: Socket;
  /** Data links by core (the latest opened to each). */
  readonly links = new Map<number, Socket>();
  /** `sb:<sandboxId>` / `call:<callId>` → the core whose link its create / invoke came on. */
  private readonly origin = new Map<string, number>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly cp: { url: string; joinToken: string },
    readonly name: string,
    private readonly opts: { nodeId?: string; heartbeat?: boolean } = {},
  ) {
    this.nodeId = opts.nodeId ?? `hand-${name}`;
    this.control = new Socket(cp.url.replace(/^http/, 'ws') + WORKER_PATH, cp.joinToken, (d) => this.received('control', d));
    void this.control.closed.then(() => clearInterval(this.heartbeat));
  }

  /** Scheduler cores of the welcome (one data link each). */
  get cores(): number {
    if (this.welcome === undefined) throw new Error(`${this.name} has no welcome yet`);
    return this.welcome.links.length;
  }

  /** Say hello (fields may be overridden) and wait for the welcome; heartbeats start. */
  async hello(over: Partial<HelloFrame> = {}): Promise<WelcomeFrame> {
    await this.control.opened;
    this.send({ t: 'hello', protocol: PROTOCOL_VERSION, nodeId: this.nodeId, name: this.name, cores: 1, memoryMb: 1024, runtime: 'emulated', sandboxes: [], ...over });
    const welcome = await this.next('welcome', () => true, 15_000, 'control');
    this.welcome = welcome;
    if (this.opts.heartbeat !== false) {
      this.heartbeat = setInterval(() => this.send({ t: 'heartbeat', freeMemoryMb: 512, sandboxes: 0 }), welcome.heartbeatMs);
      this.heartbeat.unref();
    }
    return welcome;
  }

  /** Open the data link to `core` (no linkHello yet). */
  async openLink(core: number): Promise<Socket> {
    const s = new Socket(this.linkUrl(core), this.cp.joinToken, (d) => this.received(core, d));
    this.links.set(core, s);
    await s.opened;
    return s;
  }

  /** Where the data link to `core` goes (the welcome's port for it, at LINK_PATH). */
  linkUrl(core: number): string {
    const entry = this.welcome?.links.find((l) => l.core === core);
    if (entry === undefined) throw new Error(`${this.name}: no core ${core} in the welcome`);
    const url = new URL(this.cp.url);
    url.protocol = 'ws:';
    url.port = String(entry.port);
    url.pathname = LINK_PATH;
    return url.toString();
  }

  /** Open the data link to `core` unless one is open, send its linkHello (fields may be overridden) and wait for its linkWelcome. */
  async linkHello(core: number, over: Partial<LinkHelloFrame> = {}): Promise<LinkWelcomeFrame> {
    if (this.links.get(core)?.open !== true) await this.openLink(core);
    const welcome = this.welcome!;
    this.send({ t: 'linkHello', protocol: PROTOCOL_VERSION, nodeId: welcome.nodeId, session: welcome.session, core, sandboxes: [], ...over });
    return this.next('linkWelcome', () => true, 15_000, core);
  }

  /** hello → welcome → every data link's linkHello (each reporting the hello's sandboxes its core owns) → every linkWelcome. */
  async join(hello: Partial<HelloFrame> = {}): Promise<void> {
    const welcome = await this.hello(hello);
    const n = welcome.links.length;
    await Promise.all(welcome.links.map(({ core }) => this.linkHello(core, { sandboxes: (hello.sandboxes ?? []).filter((s) => ownerCore(s.functionKey, n) === core) })));
  }

  /**
   * The link a real worker would send this frame on: control frames on the
   * control link; a linkHello on its core's link; a sandbox's frames on the
   * link its create came on; a result on the link its invoke came on; a chain
   * call on the link its parent's invoke came on. Anything it never heard of
   * goes on link 0 (the control plane must cope, whichever core gets it).
   */
  linkOf(frame: WorkerFrame): LinkId {
    switch (frame.t) {
      case 'linkHello':
        return frame.core;
      case 'sandboxReady':
      case 'sandboxFailed':
      case 'sandboxGone':
        return this.origin.get(`sb:${frame.sandboxId}`) ?? 0;
      case 'result':
        return this.origin.get(`call:${frame.callId}`) ?? this.origin.get(`sb:${frame.sandboxId}`) ?? 0;
      case 'call':
        return this.origin.get(`call:${frame.parentCallId}`) ?? 0;
      default:
        return 'control';
    }
  }

  send(frame: WorkerFrame): void {
    this.sendRaw(this.linkOf(frame), encodeFrame(frame), true);
  }

  /** Any bytes on any link (a text frame when `binary` is false). */
  sendRaw(link: LinkId, data: Uint8Array | string, binary = true): void {
    this.socket(link).send(data, binary);
  }

  socket(link: LinkId): Socket {
    const s = link === 'control' ? this.control : this.links.get(link);
    if (s === undefined) throw new Error(`${this.name} has no data link to core ${link}`);
    return s;
  }

  /**
   * The first recorded frame of type `t` (on `link`, if given) that `match`
   * accepts; fails at once if that link closed without one.
   */
  async next<T extends ControlFrame['t']>(t: T, match: (f: Extract<ControlFrame, { t: T }>) => boolean = () => true, timeoutMs = 15_000, link?: LinkId): Promise<Extract<ControlFrame, { t: T }>> {
    type F = Extract<ControlFrame, { t: T }>;
    const deadline = Date.now() + timeoutMs;
    const seen = (): string => JSON.stringify(this.frames.map((r) => `${r.link}:${r.frame.t}`));
    for (;;) {
      const r = this.frames.find((r) => r.frame.t === t && (link === undefined || r.link === link) && match(r.frame as F));
      if (r !== undefined) return r.frame as F;
      const closed = link === undefined ? undefined : this.socket(link).closedWith;
      if (closed !== undefined) throw new Error(`${this.name}: link ${link} closed with ${closed.code} ${closed.reason} before a ${t} came; got ${seen()}`);
      if (Date.now() > deadline) throw new Error(`timed out: ${this.name} got no ${t}${link === undefined ? '' : ` on link ${link}`}: ${seen()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The control link and the latest data link to each core are open. */
  up(): boolean {
    return this.control.open && [...this.links.values()].every((s) => s.open);
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const s of [this.control, ...this.links.values()]) if (s.ws.readyState !== WebSocket.CLOSED) s.ws.close();
  }

  private received(link: LinkId, data: Buffer): void {
    let frame: ControlFrame;
    try {
      frame = decodeControlFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      this.undecodable.push(`${link}: ${(e as Error).message}`);
      return;
    }
    if (typeof link === 'number' && frame.t === 'create') this.origin.set(`sb:${frame.sandboxId}`, link);
    if (typeof link === 'number' && frame.t === 'invoke') this.origin.set(`call:${frame.callId}`, link);
    this.frames.push({ link, frame });
    this.onFrame?.({ link, frame });
  }
}
