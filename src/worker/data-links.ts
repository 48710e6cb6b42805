import WebSocket from 'ws';
import type { Logger } from '../common/logger.js';
import { decodeControlFrame, encodeFrame, MAX_FRAME_BYTES } from '../protocol/codec.js';
import { CloseCode, LINK_PATH, PROTOCOL_VERSION, type ControlFrame, type LinkWelcomeFrame, type SandboxReport, type WelcomeFrame, type WorkerFrame } from '../protocol/messages.js';
import { ownerCore } from '../protocol/shard.js';

/** Frames a scheduler core sends on its data link once it has welcomed it. */
export type DataFrame = Extract<ControlFrame, { t: 'create' | 'delete' | 'invoke' | 'callResult' }>;
/** Frames the worker sends on a data link: everything about a sandbox or a call. */
export type LinkFrame = Extract<WorkerFrame, { t: 'result' | 'sandboxReady' | 'sandboxFailed' | 'sandboxGone' | 'call' }>;

/**
 * Frames held on a link between its linkHello and its linkWelcome: the core
 * counted their sandboxes or calls in the report, so it must hear how they
 * ended. A chain `call` is never held (it fails at once, as when disconnected).
 */
const HOLD: ReadonlySet<LinkFrame['t']> = new Set(['result', 'sandboxReady', 'sandboxFailed', 'sandboxGone']);
/**
 * At most this many frames held on one link. They are bounded anyway (a result
 * per call running at the report, a frame or two per sandbox), so more means a
 * core that does not answer: the worker joins again rather than pile up.
 */
export const MAX_HELD_FRAMES = 10_000;

/** Why the set of links is lost. `code`: the close code received (or sent, for a fault found here). */
export interface LinkLoss {
  where: string;
  code: number;
  reason: string;
  /** The core refused this worker (join token rejected on the upgrade). */
  fatal?: boolean;
}

export interface DataLinkEvents {
  /** A frame about a sandbox or a call arrived on the welcomed link of `core`. */
  frame(f: DataFrame, core: number): void;
  /** A core's linkWelcome named sandboxes of its report it did not adopt: delete them. */
  drop(sandboxIds: readonly string[]): void;
  /** Every link has its linkWelcome: the worker has joined. */
  joined(adopted: number, dropped: number): void;
  /** A link closed, failed, was refused or broke the protocol. Sent once; the links are already closed. */
  lost(loss: LinkLoss): void;
}

export interface DataLinksOptions {
  /** The control link's URL: the links go to its host, on the ports of the welcome. */
  controlUrl: string;
  joinToken: string;
  nodeId: string;
  welcome: Pick<WelcomeFrame, 'session' | 'links'>;
  log: Logger;
  /** The worker's sandboxes whose functions `core` owns (of `cores`), for its linkHello. */
  report(core: number, cores: number): SandboxReport[];
}

interface Link {
  core: number;
  ws: WebSocket;
  /** opening: no linkHello yet; hello: linkHello sent, frames held; welcomed: frames go out. */
  state: 'opening' | 'hello' | 'welcomed';
  held: LinkFrame[];
  /** Sandboxes in its linkHello. */
  reported: number;
}

/** What is wrong with the links of a welcome (their cores must be 0..n-1, each once), or undefined. */
export function linksProblem(links: WelcomeFrame['links']): string | undefined {
  const seen = new Set<number>();
  for (const l of links) {
    if (l.core >= links.length) return `core ${l.core} of ${links.length} links is out of range`;
    if (seen.has(l.core)) return `core ${l.core} is listed twice`;
    seen.add(l.core);
  }
  return undefined;
}

/**
 * The data links of one control session: one WebSocket per scheduler core,
 * opened after the welcome. Frames about a sandbox go on the link of the core
 * owning its function (`ownerCore`); a link that has sent its linkHello but
 * has no linkWelcome yet holds them and sends them, in order, when it comes.
 * Any link lost loses them all: the caller rejoins.
 */
export class DataLinks {
  /** By core. */
  private readonly links: Link[] = [];
  private closed = false;
  private welcomed = 0;
  private adopted = 0;
  private dropped = 0;

  constructor(
    private readonly o: DataLinksOptions,
    private readonly events: DataLinkEvents,
  ) {
    const problem = linksProblem(o.welcome.links);
    if (problem !== undefined) throw new RangeError(`welcome links: ${problem}`);
  }

  get size(): number {
    return this.o.welcome.links.length;
  }

  /** Open every link (each sends its linkHello when open). */
  open(): void {
    const ordered = [...this.o.welcome.links].sort((a, b) => a.core - b.core);
    for (const { core, port } of ordered) {
      const url = new URL(this.o.controlUrl);
      url.port = String(port);
      url.pathname = LINK_PATH;
      url.search = '';
      url.hash = '';
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.o.joinToken}` }, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
      ws.binaryType = 'nodebuffer';
      const link: Link = { core, ws, state: 'opening', held: [], reported: 0 };
      this.links[core] = link;
      this.listen(link);
    }
  }

  private listen(link: Link): void {
    const { ws, core } = link;
    const where = `data link to core ${core}`;
    ws.on('open', () => {
      if (this.closed) return;
      const sandboxes = this.o.report(core, this.size);
      link.reported = sandboxes.length;
      link.state = 'hello';
      ws.send(encodeFrame({ t: 'linkHello', protocol: PROTOCOL_VERSION, nodeId: this.o.nodeId, session: this.o.welcome.session, core, sandboxes }));
    });
    ws.on('message', (data: Buffer) => {
      if (this.closed) return;
      let frame: ControlFrame;
      try {
        frame = decodeControlFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } catch (e) {
        this.o.log.error({ err: e, core }, 'invalid frame on a data link; rejoining');
        this.fault(link, 'invalid frame');
        return;
      }
      try {
        this.handle(link, frame);
      } catch (e) {
        this.o.log.error({ err: e, t: frame.t, core }, 'error handling a frame from a scheduler core');
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      const fatal = res.statusCode === 401;
      this.o.log.error({ status: res.statusCode, core }, fatal ? 'a scheduler core rejected the join token' : 'a scheduler core refused the data link');
      ws.terminate();
      this.lose({ where, code: fatal ? CloseCode.unauthorized : 1006, reason: `data link upgrade refused with HTTP ${res.statusCode}`, fatal }, link);
    });
    ws.on('error', (e) => {
      this.o.log.debug({ err: e, core }, 'data link error');
      this.lose({ where, code: 1006, reason: e.message }, link);
    });
    ws.on('close', (code, reason) => this.lose({ where, code, reason: reason.toString() }, link));
  }

  private handle(link: Link, f: ControlFrame): void {
    switch (f.t) {
      case 'linkWelcome':
        this.linkWelcome(link, f);
        return;
      case 'create':
      case 'delete':
      case 'invoke':
      case 'callResult':
        if (link.state !== 'welcomed') {
          this.protocolError(link, `"${f.t}" before linkWelcome`);
          return;
        }
        this.events.frame(f, link.core);
        return;
      default:
        this.protocolError(link, `"${f.t}" is a control-link frame`);
    }
  }

  private linkWelcome(link: Link, f: LinkWelcomeFrame): void {
    if (link.state !== 'hello') {
      this.protocolError(link, link.state === 'welcomed' ? 'a second linkWelcome' : 'linkWelcome before linkHello');
      return;
    }
    if (f.core !== link.core) {
      this.protocolError(link, `linkWelcome for core ${f.core} on the link of core ${link.core}`);
      return;
    }
    link.state = 'welcomed';
    this.adopted += Math.max(0, link.reported - f.drop.length);
    this.dropped += f.drop.length;
    this.events.drop(f.drop);
    for (const frame of link.held.splice(0)) if (!this.closed) link.ws.send(encodeFrame(frame));
    this.welcomed++;
    if (this.welcomed === this.links.length && !this.closed) this.events.joined(this.adopted, this.dropped);
  }

  /** Send a frame about a sandbox of `functionKey` on its core's link. False: not sent and not held (dropped). */
  send(functionKey: string, frame: LinkFrame): boolean {
    return this.sendOn(ownerCore(functionKey, this.size), frame);
  }

  /** Send a frame on the link of `core` (held if that link awaits its linkWelcome). */
  sendOn(core: number, frame: LinkFrame): boolean {
    const link = this.links[core];
    if (this.closed || link === undefined) return false;
    if (link.state === 'welcomed') {
      if (link.ws.readyState !== WebSocket.OPEN) return false;
      link.ws.send(encodeFrame(frame));
      return true;
    }
    // before the linkHello, the report it will carry covers this frame
    if (link.state !== 'hello' || !HOLD.has(frame.t)) return false;
    if (link.held.length >= MAX_HELD_FRAMES) {
      this.o.log.error({ core, held: link.held.length }, 'too many frames held waiting for a linkWelcome; rejoining');
      this.fault(link, 'no linkWelcome');
      return false;
    }
    link.held.push(frame);
    return true;
  }

  private protocolError(link: Link, what: string): void {
    this.o.log.error({ core: link.core, what }, 'protocol error on a data link; rejoining');
    this.fault(link, what);
  }

  /** A fault found here: close that link as a bad frame and lose the set. */
  private fault(link: Link, reason: string): void {
    if (this.closed) return;
    link.ws.close(CloseCode.badFrame, reason.slice(0, 120));
    this.lose({ where: `data link to core ${link.core}`, code: CloseCode.badFrame, reason }, link);
  }

  private lose(loss: LinkLoss, from: Link): void {
    if (this.closed) return;
    this.close(CloseCode.normal, `the data link to core ${from.core} was lost`);
    this.events.lost(loss);
  }

  /** Close every link; no event fires after this. Held frames are dropped (the next join's reports cover them). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links) {
      link.held = [];
      if (link.ws.readyState === WebSocket.CONNECTING) link.ws.terminate();
      else if (link.ws.readyState === WebSocket.OPEN) link.ws.close(code, reason);
    }
  }
}
