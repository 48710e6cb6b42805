import { availableParallelism, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { decodeControlFrame, encodeFrame, MAX_FRAME_BYTES } from '../protocol/codec.js';
import { chainCallFrame, CloseCode, PROTOCOL_VERSION, WORKER_PATH, type ChainCallFrame, type ControlFrame, type CreateFrame, type InvokeFrame, type SandboxReport, type WelcomeFrame, type WorkerFrame } from '../protocol/messages.js';
import { ownerCore } from '../protocol/shard.js';
import { EmulatedRuntime } from '../sandbox/emulated/emulated-runtime.js';
import { chainError, errorResponse, type ChainRequest, type ChainResponse, type SandboxRuntime } from '../sandbox/runtime.js';
import { createProcessRuntimes, type IsolationOptions } from '../sandbox/process/process-runtimes.js';
import { BundleCache } from './bundle-cache.js';
import { DataLinks, linksProblem, type DataFrame, type LinkFrame, type LinkLoss } from './data-links.js';
import { LogStore } from './log-store.js';
import { loadNodeId } from './node-identity.js';
import { SandboxHost } from './sandbox-host.js';

export interface WorkerOptions {
  controlPlane: string;
  joinToken: string;
  stateDir: string;
  runtime: 'process' | 'emulated';
  logger: Logger;
  nodeId?: string;
  name?: string;
  cores?: number;
  /** Memory offered to sandboxes, MB (default: the machine's memory less a reserve for the system). */
  memoryMb?: number;
  /** Enforce price classes on this machine (default true); false runs every call at once and lets the OS share cores. */
  classes?: boolean;
  emulated?: { createMs?: number; execMs?: number; jitter?: number };
  stemCells?: number;
  /** Sandbox isolation for the process runtime (uids, namespaces, cgroup limits). */
  isolation?: IsolationOptions;
  reconnect?: { initialMs?: number; maxMs?: number };
  /** How long a SIGTERM waits for in-flight calls before stopping anyway (default 30 s). */
  drainTimeoutMs?: number;
  /** Exit instead of retrying when the control plane refuses us (bad token, wrong version). */
  exitOnFatal?: boolean;
}

export type WorkerState = 'starting' | 'connecting' | 'running' | 'draining' | 'stopping' | 'stopped';

/** Frames the worker sends on the control link (frames about sandboxes and calls go on the data links). */
type ControlLinkFrame = Extract<WorkerFrame, { t: 'heartbeat' | 'draining' | 'getBundle' | 'logs' }>;

/** Response size limit before the control plane says otherwise in its welcome. */
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Chain call body limit when the control plane does not say (its default invocation body limit). */
const DEFAULT_MAX_CALL_BODY_BYTES = 6 * 1024 * 1024;

function compile(o: WorkerOptions): Required<Pick<WorkerOptions, 'cores' | 'memoryMb' | 'name' | 'drainTimeoutMs'>> & { url: string } {
  let url: URL;
  try {
    url = new URL(o.controlPlane);
  } catch {
    throw new TypeError(`controlPlane: "${o.controlPlane}" is not a URL (expected ws://HOST:PORT)`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`controlPlane: expected ws:// or wss://, got ${url.protocol}`);
  if (o.joinToken === '') throw new TypeError('joinToken: required (the control plane prints it and keeps it in its credentials.json)');
  const cores = o.cores ?? availableParallelism();
  const totalMb = Math.floor(totalmem() / 1024 / 1024);
  // the system, the worker and the page cache need room too: keep 10 % (at least 256 MB, at most 4 GB) back
  const memoryMb = o.memoryMb ?? Math.max(64, totalMb - Math.min(4096, Math.max(256, Math.floor(totalMb / 10))));
  if (!Number.isInteger(cores) || cores < 1) throw new RangeError(`cores must be a positive integer, got ${o.cores}`);
  if (!Number.isInteger(memoryMb) || memoryMb < 1) throw new RangeError(`memoryMb must be a positive integer, got ${o.memoryMb}`);
  const drainTimeoutMs = o.drainTimeoutMs ?? 30_000;
  if (!Number.isFinite(drainTimeoutMs) || drainTimeoutMs < 0) throw new RangeError(`drainTimeoutMs must be a non-negative number, got ${o.drainTimeoutMs}`);
  const base = url.toString().replace(/\/+$/, '');
  return { cores, memoryMb, name: o.name ?? hostname(), drainTimeoutMs, url: base.endsWith(WORKER_PATH) ? base : base + WORKER_PATH };
}

/**
 * The worker daemon: joins the control plane, creates and deletes sandboxes on
 * request, runs invocations on them, and keeps its sandboxes across control
 * plane restarts (reporting them on every reconnect).
 *
 * Joining: the control link (hello, welcome; then heartbeats, draining,
 * bundles, logs) and, after the welcome, one data link per scheduler core
 * (DataLinks) carrying everything about sandboxes and calls. The worker has
 * joined when every data link has its linkWelcome; losing any link loses
 * them all, and it joins again.
 */
export class WorkerDaemon {
  state: WorkerState = 'starting';
  readonly nodeId: string;
  private readonly cfg: ReturnType<typeof compile>;
  private readonly log: Logger;
  private readonly runtimes: Record<string, SandboxRuntime>;
  private readonly closeRuntimes: () => Promise<void>;
  private readonly host: SandboxHost;
  private readonly bundles: BundleCache;
  /** The sandboxes' output lines, for the control plane's getLogs. */
  private readonly logs = new LogStore();
  /** The control link. */
  private ws: WebSocket | undefined;
  /** The control link's welcome came: control frames may go out. */
  private welcomed = false;
  /** The data links of the current welcome's session. */
  private links: DataLinks | undefined;
  /** Sandboxes the welcome itself dropped, for the log line of the join. */
  private welcomeDropped = 0;
  private maxResponseBytes = DEFAULT_MAX_RESPONSE_BYTES;
  private maxCallBodyBytes = DEFAULT_MAX_CALL_BODY_BYTES;
  /** Chain calls sent to the control plane and not answered yet, by reqId (never reused while the daemon lives). */
  private readonly chainCalls = new Map<number, (r: ChainResponse) => void>();
  private nextChainReq = 1;
  private heartbeat: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped: Promise<void> | undefined;
  private readonly stoppedCbs: (() => void)[] = [];

  constructor(private readonly opts: WorkerOptions) {
    this.cfg = compile(opts);
    this.nodeId = opts.nodeId ?? loadNodeId(opts.stateDir);
    this.log = opts.logger.child({ component: 'worker', nodeId: this.nodeId });
    this.bundles = new BundleCache(join(opts.stateDir, 'bundles'), (hash) => this.send({ t: 'getBundle', hash }));
    if (opts.runtime === 'emulated') {
      const emu = new EmulatedRuntime(opts.emulated);
      this.runtimes = { node: emu, http: emu };
      this.closeRuntimes = () => emu.close();
      this.host = this.newHost({});
    } else {
      const rts = createProcessRuntimes({
        log: this.log,
        stateDir: opts.stateDir,
        nodeId: this.nodeId,
        memoryMb: this.cfg.memoryMb,
        logs: this.logs,
        ...(opts.stemCells === undefined ? {} : { stemCells: opts.stemCells }),
        ...(opts.isolation === undefined ? {} : { isolation: opts.isolation }),
      });
      this.runtimes = { node: rts.node, http: rts.http };
      this.closeRuntimes = async () => {
        await Promise.allSettled([rts.node.close(), rts.http.close()]);
        await rts.close();
      };
      this.host = this.newHost({ cpus: rts.cpus, swapMb: () => rts.swapMb(), totalMemoryMb: () => rts.totalMemoryMb(), totalOomKills: () => rts.totalOomKills() });
      this.host.startMemoryManager();
    }
  }

  private newHost(extra: { cpus?: number[]; swapMb?: () => number; totalMemoryMb?: () => number | undefined; totalOomKills?: () => number }): SandboxHost {
    const classes = this.opts.classes ?? true;
    this.log.info({ cores: this.cfg.cores, memoryMb: this.cfg.memoryMb, classes, pinning: (extra.cpus?.length ?? 0) > 0 }, classes ? 'machine scheduler: price classes enforced on this worker\'s cores' : 'machine scheduler OFF (--no-classes): every call runs at once and the OS shares the cores');
    return new SandboxHost(
      {
        log: this.log,
        runtimes: this.runtimes,
        cores: this.cfg.cores,
        memoryMb: this.cfg.memoryMb,
        cpus: extra.cpus ?? [],
        classes,
        ...(extra.swapMb === undefined ? {} : { swapMb: extra.swapMb }),
        ...(extra.totalMemoryMb === undefined ? {} : { totalMemoryMb: extra.totalMemoryMb }),
        ...(extra.totalOomKills === undefined ? {} : { totalOomKills: extra.totalOomKills }),
      },
      {
        result: (frame, functionKey) => {
          // never undefined here: the daemon answers calls to sandboxes it does not have itself (handleData)
          if (functionKey !== undefined) this.sendAbout(functionKey, frame);
          else this.log.warn({ callId: frame.callId, sandboxId: frame.sandboxId }, 'result of a call to an unknown sandbox: dropped');
        },
        gone: (sandboxId, reason, functionKey) => this.sendAbout(functionKey, { t: 'sandboxGone', sandboxId, reason }),
        call: (parentCallId, req, functionKey) => this.chainCall(parentCallId, req, functionKey),
      },
    );
  }

  start(): void {
    this.connect();
  }

  /** Resolves when the daemon has stopped. */
  whenStopped(): Promise<void> {
    return this.state === 'stopped' ? Promise.resolve() : new Promise((r) => this.stoppedCbs.push(r));
  }

  get sandboxCount(): number {
    return this.host.sandboxes.size;
  }

  private connect(): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    if (this.state !== 'draining') this.state = 'connecting';
    this.welcomed = false;
    const ws = new WebSocket(this.cfg.url, { headers: { authorization: `Bearer ${this.opts.joinToken}` }, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => {
      if (this.ws !== ws) return;
      // the full report, though the control plane only logs it: the data links' linkHellos carry what it adopts
      const hello: WorkerFrame = { t: 'hello', protocol: PROTOCOL_VERSION, nodeId: this.nodeId, name: this.cfg.name, cores: this.cfg.cores, memoryMb: this.cfg.memoryMb, runtime: this.opts.runtime, sandboxes: this.report(() => true) };
      ws.send(encodeFrame(hello));
    });
    ws.on('message', (data: Buffer) => {
      if (this.ws !== ws) return;
      let frame: ControlFrame;
      try {
        frame = decodeControlFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } catch (e) {
        this.log.error({ err: e }, 'invalid frame from the control plane; reconnecting');
        this.protocolError('invalid frame');
        return;
      }
      try {
        this.handleControl(frame);
      } catch (e) {
        this.log.error({ err: e, t: frame.t }, 'error handling a frame from the control plane');
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      const fatal = res.statusCode === 401;
      this.log.error({ status: res.statusCode }, fatal ? 'control plane rejected the join token' : 'control plane refused the connection');
      ws.terminate();
      if (this.ws === ws) this.connectionLost({ where: 'control link', code: fatal ? CloseCode.unauthorized : 1006, reason: `upgrade refused with HTTP ${res.statusCode}`, fatal });
    });
    ws.on('error', (e) => this.log.debug({ err: e }, 'connection error'));
    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.connectionLost({ where: 'control link', code, reason: reason.toString() });
    });
  }

  /** The worker's sandboxes (those `which` picks), as hello and linkHello report them. */
  private report(which: (functionKey: string) => boolean): SandboxReport[] {
    const out: SandboxReport[] = [];
    for (const h of this.host.sandboxes.values()) {
      const spec = h.sandbox.spec;
      if (!which(spec.functionKey)) continue;
      out.push({ sandboxId: h.sandbox.id, functionKey: spec.functionKey, version: spec.version, incarnation: spec.incarnation, inflight: h.inflight, ...(h.sandbox.pid === undefined ? {} : { pid: h.sandbox.pid }) });
    }
    return out;
  }

  /** A frame the control plane must not send (on that link, or at all now): close everything and join again. */
  private protocolError(what: string): void {
    this.log.error({ what }, 'protocol error on the control link; reconnecting');
    this.ws?.close(CloseCode.badFrame, what.slice(0, 120));
    this.connectionLost({ where: 'control link', code: CloseCode.badFrame, reason: what });
  }

  /**
   * The control link or a data link is gone: close all of them, fail what
   * waited for an answer, and join again (or give up, if refused).
   */
  private connectionLost(loss: LinkLoss): void {
    const ws = this.ws;
    const links = this.links;
    this.ws = undefined;
    this.links = undefined;
    this.welcomed = false;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    links?.close(CloseCode.normal, `${loss.where} lost`);
    if (ws !== undefined) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else if (ws.readyState === WebSocket.OPEN) ws.close(CloseCode.normal, `${loss.where} lost`);
    }
    this.bundles.failAll('connection to the control plane lost while fetching the bundle');
    this.failChainCalls('the connection to the control plane was lost before the answer came; the callee may or may not have run');
    if (this.state === 'stopping' || this.state === 'stopped') return;
    if (loss.fatal === true || loss.code === CloseCode.wrongVersion || loss.code === CloseCode.unauthorized) {
      this.log.error({ where: loss.where, code: loss.code, reason: loss.reason }, 'control plane refused this worker');
      this.fatal(loss.fatal === true ? 'join token rejected by the control plane' : loss.reason);
      return;
    }
    this.log.warn({ where: loss.where, code: loss.code, reason: loss.reason }, 'disconnected from the control plane; reconnecting');
    this.scheduleReconnect(loss.code === CloseCode.replaced);
  }

  private fatal(reason: string): void {
    if (this.opts.exitOnFatal === true) {
      this.log.fatal({ reason }, 'giving up');
      void this.stop();
    } else {
      this.scheduleReconnect(true);
    }
  }

  private scheduleReconnect(slow: boolean): void {
    if (this.retryTimer !== undefined || this.state === 'stopping' || this.state === 'stopped') return;
    const initial = this.opts.reconnect?.initialMs ?? 100;
    const max = this.opts.reconnect?.maxMs ?? 5000;
    const base = slow ? max : Math.min(max, initial * 2 ** this.attempt);
    this.attempt++;
    const delay = base / 2 + Math.random() * (base / 2);
    if (this.state !== 'draining') this.state = 'connecting';
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
  }

  /** A frame on the control link, once welcomed; otherwise dropped (false). */
  private send(frame: ControlLinkFrame): boolean {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN || !this.welcomed) {
      this.log.debug({ t: frame.t }, 'not connected: frame dropped');
      return false;
    }
    ws.send(encodeFrame(frame));
    return true;
  }

  /**
   * A frame about a sandbox of `functionKey`: on the data link of the core
   * that owns the function, held there if that link awaits its linkWelcome.
   * False: dropped (no links; the next join's reports cover it).
   */
  private sendAbout(functionKey: string, frame: LinkFrame): boolean {
    if (this.links?.send(functionKey, frame) === true) return true;
    this.log.debug({ t: frame.t }, 'not joined: frame dropped');
    return false;
  }

  /** Frames on the control link: its welcome, bundles, log queries. */
  private handleControl(f: ControlFrame): void {
    switch (f.t) {
      case 'welcome':
        this.welcome(f);
        return;
      case 'bundle':
        this.bundles.deliver(f.hash, f.data, f.error?.message);
        return;
      case 'getLogs': {
        const r = this.logs.query(f);
        this.send({ t: 'logs', reqId: f.reqId, lines: r.lines, ...(r.truncated ? { truncated: true } : {}) });
        return;
      }
      default:
        this.protocolError(`"${f.t}" is a data-link frame`);
    }
  }

  private welcome(f: WelcomeFrame): void {
    if (this.welcomed) {
      this.protocolError('a second welcome');
      return;
    }
    const problem = linksProblem(f.links);
    if (problem !== undefined) {
      this.protocolError(`welcome links: ${problem}`);
      return;
    }
    this.welcomed = true;
    this.maxResponseBytes = f.maxResponseBytes;
    // never past what one frame can carry, whatever the control plane allows its clients
    this.maxCallBodyBytes = Math.min(f.maxCallBodyBytes ?? DEFAULT_MAX_CALL_BODY_BYTES, MAX_FRAME_BYTES - 1024 * 1024);
    this.host.setClasses(f.classes);
    for (const id of f.drop) void this.host.delete(id);
    this.welcomeDropped = f.drop.length;
    if (this.state === 'draining') this.send({ t: 'draining', timeoutMs: this.cfg.drainTimeoutMs });
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.sendHeartbeat(), f.heartbeatMs);
    this.heartbeat.unref();
    const links: DataLinks = new DataLinks(
      {
        controlUrl: this.cfg.url,
        joinToken: this.opts.joinToken,
        nodeId: this.nodeId,
        welcome: f,
        log: this.log,
        report: (core, cores) => this.report((functionKey) => ownerCore(functionKey, cores) === core),
      },
      {
        frame: (frame, core) => this.handleData(frame, core),
        drop: (ids) => {
          for (const id of ids) void this.host.delete(id);
        },
        joined: (adopted, dropped) => {
          this.attempt = 0;
          if (this.state === 'connecting') this.state = 'running';
          this.log.info({ adopted, dropped: dropped + this.welcomeDropped, links: links.size }, 'joined the control plane');
        },
        lost: (loss) => {
          if (this.links === links) this.connectionLost(loss);
        },
      },
    );
    this.links = links;
    this.log.debug({ session: f.session, links: f.links.length }, 'welcomed: opening the data links');
    links.open();
  }

  /** Frames from a scheduler core on its data link. */
  private handleData(f: DataFrame, core: number): void {
    switch (f.t) {
      case 'create':
        this.createSandbox(f);
        return;
      case 'delete':
        void this.host.delete(f.sandboxId);
        return;
      case 'invoke':
        if (this.host.sandboxes.has(f.sandboxId)) this.host.invoke(f, this.maxResponseBytes);
        else this.noSuchSandbox(f, core);
        return;
      case 'callResult': {
        const answer = this.chainCalls.get(f.reqId);
        if (answer === undefined) return;
        this.chainCalls.delete(f.reqId);
        const r: ChainResponse = { status: f.status, headers: f.headers, body: f.body };
        if (f.callId !== undefined) r.callId = f.callId;
        if (f.error !== undefined) r.error = BatonError.fromWire(f.error).toWire();
        answer(r);
        return;
      }
    }
  }

  /** A call to a sandbox this worker does not have: no function to route by, so answered on the link it came on. */
  private noSuchSandbox(f: InvokeFrame, core: number): void {
    const r = errorResponse(502, 'sandbox_failed', `sandbox ${f.sandboxId} does not exist on this worker`);
    this.links?.sendOn(core, { t: 'result', callId: f.callId, sandboxId: f.sandboxId, status: r.status, headers: r.headers, body: r.body, execMs: r.execMs, ...(r.error === undefined ? {} : { error: r.error }) });
  }

  /**
   * A chain call over the link. Everything in it comes from a function's own
   * code, so it is checked here against the frame's schema and the body limit:
   * a frame the control plane would refuse closes the whole link, failing
   * every call on this worker, and must never leave.
   */
  private chainCall(parentCallId: string, req: ChainRequest, functionKey: string): Promise<ChainResponse> {
    if (req.body.byteLength > this.maxCallBodyBytes) {
      return Promise.resolve(chainError('payload_too_large', `ctx.invoke("${req.function}"): a body of ${req.body.byteLength} bytes exceeds the limit of ${this.maxCallBodyBytes} bytes`));
    }
    const frame: ChainCallFrame = { t: 'call', reqId: this.nextChainReq++, parentCallId, function: req.function, method: req.method, path: req.path, headers: req.headers, body: req.body };
    if (req.priceClass !== undefined) frame.priceClass = req.priceClass;
    const checked = chainCallFrame.safeParse(frame);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      return Promise.resolve(chainError('bad_request', `ctx.invoke("${req.function}"): ${issue?.path.join('.') ?? 'call'}: ${issue?.message ?? 'invalid'}`));
    }
    // on the link of the sandbox running the parent call
    if (!this.sendAbout(functionKey, frame)) return Promise.resolve(chainError('chain_broken', 'this worker is not connected to the control plane'));
    return new Promise((resolve) => this.chainCalls.set(frame.reqId, resolve));
  }

  private failChainCalls(message: string): void {
    const waiting = [...this.chainCalls.values()];
    this.chainCalls.clear();
    for (const answer of waiting) answer(chainError('chain_broken', message));
  }

  private sendHeartbeat(): void {
    const load = this.host.load();
    this.send({ t: 'heartbeat', freeMemoryMb: Math.floor(this.host.freeMemoryMb()), sandboxes: this.host.sandboxes.size, busyByRank: load.busyByRank, waiting: load.waiting, preemptions: this.host.preemptions });
  }

  private createSandbox(f: CreateFrame): void {
    if (this.state === 'draining' || this.state === 'stopping' || this.state === 'stopped') {
      this.sendAbout(f.spec.functionKey, { t: 'sandboxFailed', sandboxId: f.sandboxId, error: { code: 'sandbox_failed', message: `worker ${this.cfg.name} is shutting down` } });
      return;
    }
    const codeDir = (): Promise<string | undefined> => (this.opts.runtime === 'emulated' || f.spec.bundleHash === '' ? Promise.resolve(undefined) : this.bundles.get(f.spec.bundleHash));
    this.host.create(
      f,
      codeDir,
      (sandbox, createMs) => {
        if (this.state === 'stopping' || this.state === 'stopped') {
          void this.host.delete(f.sandboxId);
          return;
        }
        // If this cannot be sent (disconnected), the sandbox is in the next linkHello's report.
        this.sendAbout(f.spec.functionKey, { t: 'sandboxReady', sandboxId: f.sandboxId, createMs, ...(sandbox.pid === undefined ? {} : { pid: sandbox.pid }) });
      },
      (message) => this.sendAbout(f.spec.functionKey, { t: 'sandboxFailed', sandboxId: f.sandboxId, error: { code: 'sandbox_failed', message } }),
    );
  }

  /**
   * SIGTERM: take no new sandboxes (the control plane stops placing here and
   * drains our sandboxes), let in-flight calls finish within the drain
   * timeout, then stop.
   */
  async drain(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return this.stop();
    if (this.state !== 'draining') {
      this.state = 'draining';
      this.send({ t: 'draining', timeoutMs: this.cfg.drainTimeoutMs });
      this.log.info({ inflight: this.host.inflight, timeoutMs: this.cfg.drainTimeoutMs }, 'draining: finishing in-flight calls before stopping');
      let timer: NodeJS.Timeout | undefined;
      const idle = this.host.whenIdle().then(() => true);
      const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.cfg.drainTimeoutMs)));
      const finished = await Promise.race([idle, timedOut]);
      if (timer !== undefined) clearTimeout(timer);
      if (!finished) this.log.warn({ inflight: this.host.inflight }, 'drain timeout reached: stopping with calls still running');
    }
    return this.stop();
  }

  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.state = 'stopping';
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    // keep heartbeating while sandboxes stop (that can take seconds): the control plane must not
    // declare this worker dead while it is still closing down properly
    await this.host.stopAll();
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    await this.closeRuntimes().catch((e: unknown) => this.log.warn({ err: e }, 'error closing the sandbox runtimes'));
    this.failChainCalls('the worker is stopping');
    const ws = this.ws;
    const links = this.links;
    this.ws = undefined;
    this.links = undefined;
    links?.close(CloseCode.normal, 'worker stopping');
    ws?.close(CloseCode.normal, 'worker stopping');
    this.state = 'stopped';
    this.log.info('worker stopped');
    for (const cb of this.stoppedCbs.splice(0)) cb();
  }
}

export async function startWorker(options: WorkerOptions): Promise<WorkerDaemon> {
  const d = new WorkerDaemon(options);
  d.start();
  return Promise.resolve(d);
}
