import { availableParallelism, freemem, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { BatonError, asBatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { decodeControlFrame, encodeFrame, MAX_FRAME_BYTES } from '../protocol/codec.js';
import { CloseCode, PROTOCOL_VERSION, WORKER_PATH, type ControlFrame, type CreateFrame, type InvokeFrame, type WorkerFrame } from '../protocol/messages.js';
import { EmulatedRuntime } from '../sandbox/emulated/emulated-runtime.js';
import { errorResponse, type Sandbox, type SandboxResponse, type SandboxRuntime } from '../sandbox/runtime.js';
import { createProcessRuntimes, type IsolationOptions } from '../sandbox/process/process-runtimes.js';
import { BundleCache } from './bundle-cache.js';
import { loadNodeId } from './node-identity.js';

export interface WorkerOptions {
  controlPlane: string;
  joinToken: string;
  stateDir: string;
  runtime: 'process' | 'emulated';
  logger: Logger;
  nodeId?: string;
  name?: string;
  cores?: number;
  memoryMb?: number;
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

interface Held {
  sandbox: Sandbox;
  inflight: number;
}

/** Response size limit before the control plane says otherwise in its welcome. */
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

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
  const memoryMb = o.memoryMb ?? Math.floor(totalmem() / 1024 / 1024);
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
 */
export class WorkerDaemon {
  state: WorkerState = 'starting';
  readonly nodeId: string;
  private readonly cfg: ReturnType<typeof compile>;
  private readonly log: Logger;
  private readonly runtimes: Record<string, SandboxRuntime>;
  private readonly closeRuntimes: () => Promise<void>;
  private readonly sandboxes = new Map<string, Held>();
  private readonly creating = new Map<string, Promise<void>>();
  private readonly bundles: BundleCache;
  private ws: WebSocket | undefined;
  /** A hello went out on the current connection and no welcome came back yet. */
  private helloPending = false;
  /** Results finished between our hello (which counted them as running) and the welcome: sent after it. */
  private heldResults: WorkerFrame[] = [];
  private welcomed = false;
  private maxResponseBytes = DEFAULT_MAX_RESPONSE_BYTES;
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
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
    } else {
      const rts = createProcessRuntimes({
        log: this.log,
        stateDir: opts.stateDir,
        nodeId: this.nodeId,
        memoryMb: this.cfg.memoryMb,
        ...(opts.stemCells === undefined ? {} : { stemCells: opts.stemCells }),
        ...(opts.isolation === undefined ? {} : { isolation: opts.isolation }),
      });
      this.runtimes = { node: rts.node, http: rts.http };
      this.closeRuntimes = async () => {
        await Promise.allSettled([rts.node.close(), rts.http.close()]);
        await rts.close();
      };
    }
  }

  start(): void {
    this.connect();
  }

  /** Resolves when the daemon has stopped. */
  whenStopped(): Promise<void> {
    return this.state === 'stopped' ? Promise.resolve() : new Promise((r) => this.stoppedCbs.push(r));
  }

  get sandboxCount(): number {
    return this.sandboxes.size;
  }

  private connect(): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    if (this.state !== 'draining') this.state = 'connecting';
    this.welcomed = false;
    this.helloPending = false;
    this.heldResults = [];
    const ws = new WebSocket(this.cfg.url, { headers: { authorization: `Bearer ${this.opts.joinToken}` }, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => {
      const hello: WorkerFrame = {
        t: 'hello',
        protocol: PROTOCOL_VERSION,
        nodeId: this.nodeId,
        name: this.cfg.name,
        cores: this.cfg.cores,
        memoryMb: this.cfg.memoryMb,
        runtime: this.opts.runtime,
        sandboxes: [...this.sandboxes.values()].map((h) => ({
          sandboxId: h.sandbox.id,
          functionKey: h.sandbox.spec.functionKey,
          version: h.sandbox.spec.version,
          incarnation: h.sandbox.spec.incarnation,
          inflight: h.inflight,
          ...(h.sandbox.pid === undefined ? {} : { pid: h.sandbox.pid }),
        })),
      };
      this.helloPending = true;
      ws.send(encodeFrame(hello));
    });
    ws.on('message', (data: Buffer) => {
      let frame: ControlFrame;
      try {
        frame = decodeControlFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } catch (e) {
        this.log.error({ err: e }, 'invalid frame from the control plane; reconnecting');
        ws.close(CloseCode.badFrame, 'invalid frame');
        return;
      }
      try {
        this.handle(frame);
      } catch (e) {
        this.log.error({ err: e, t: frame.t }, 'error handling a frame from the control plane');
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      const fatal = res.statusCode === 401;
      this.log.error({ status: res.statusCode }, fatal ? 'control plane rejected the join token' : 'control plane refused the connection');
      ws.terminate();
      if (fatal) this.fatal('join token rejected by the control plane');
    });
    ws.on('error', (e) => this.log.debug({ err: e }, 'connection error'));
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.welcomed = false;
      this.helloPending = false;
      this.heldResults = [];
      if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
      this.bundles.failAll('connection to the control plane lost while fetching the bundle');
      if (this.state === 'stopping' || this.state === 'stopped') return;
      if (code === CloseCode.wrongVersion || code === CloseCode.unauthorized) {
        this.log.error({ code, reason: reason.toString() }, 'control plane refused this worker');
        this.fatal(reason.toString());
        return;
      }
      this.log.warn({ code, reason: reason.toString() }, 'disconnected from the control plane; reconnecting');
      this.scheduleReconnect(code === CloseCode.replaced);
    });
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

  private send(frame: WorkerFrame): boolean {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN || !this.welcomed) {
      if (frame.t === 'result' && this.helloPending) {
        this.heldResults.push(frame);
        return true;
      }
      if (frame.t !== 'hello') this.log.debug({ t: frame.t }, 'not connected: frame dropped');
      return false;
    }
    ws.send(encodeFrame(frame));
    return true;
  }

  private handle(f: ControlFrame): void {
    switch (f.t) {
      case 'welcome': {
        this.welcomed = true;
        this.helloPending = false;
        this.attempt = 0;
        this.maxResponseBytes = f.maxResponseBytes;
        if (this.state === 'connecting') this.state = 'running';
        for (const id of f.drop) void this.deleteSandbox(id);
        const held = this.heldResults.splice(0);
        for (const r of held) this.send(r);
        if (this.state === 'draining') this.send({ t: 'draining', timeoutMs: this.cfg.drainTimeoutMs });
        if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
        this.heartbeat = setInterval(() => this.send({ t: 'heartbeat', freeMemoryMb: Math.floor(freemem() / 1024 / 1024), sandboxes: this.sandboxes.size }), f.heartbeatMs);
        this.heartbeat.unref();
        this.log.info({ adopted: this.sandboxes.size - f.drop.length, dropped: f.drop.length }, 'joined the control plane');
        return;
      }
      case 'create':
        this.createSandbox(f);
        return;
      case 'delete':
        void this.deleteSandbox(f.sandboxId);
        return;
      case 'invoke':
        this.invoke(f);
        return;
      case 'bundle':
        this.bundles.deliver(f.hash, f.data, f.error?.message);
        return;
    }
  }

  private createSandbox(f: CreateFrame): void {
    if (this.state === 'draining' || this.state === 'stopping' || this.state === 'stopped') {
      this.send({ t: 'sandboxFailed', sandboxId: f.sandboxId, error: { code: 'sandbox_failed', message: `worker ${this.cfg.name} is shutting down` } });
      return;
    }
    const started = performance.now();
    const runtime = this.runtimes[f.spec.runtime];
    const work = (async () => {
      if (runtime === undefined) throw new BatonError('sandbox_failed', `runtime ${f.spec.runtime} is not available on this worker`);
      const codeDir = this.opts.runtime === 'emulated' || f.spec.bundleHash === '' ? undefined : await this.bundles.get(f.spec.bundleHash);
      return runtime.create(f.sandboxId, f.spec, codeDir);
    })();
    const p = work.then(
      (sandbox) => {
        this.creating.delete(f.sandboxId);
        if (this.state === 'stopping' || this.state === 'stopped') {
          void sandbox.stop();
          return;
        }
        this.sandboxes.set(f.sandboxId, { sandbox, inflight: 0 });
        sandbox.onExit((reason) => {
          this.sandboxes.delete(f.sandboxId);
          this.log.warn({ sandboxId: f.sandboxId, fn: f.spec.functionKey, reason }, 'sandbox died');
          this.send({ t: 'sandboxGone', sandboxId: f.sandboxId, reason });
        });
        // If this cannot be sent (disconnected), the sandbox is in the next hello's report.
        this.send({ t: 'sandboxReady', sandboxId: f.sandboxId, createMs: performance.now() - started, ...(sandbox.pid === undefined ? {} : { pid: sandbox.pid }) });
      },
      (e: unknown) => {
        this.creating.delete(f.sandboxId);
        const err = asBatonError(e);
        this.log.warn({ sandboxId: f.sandboxId, fn: f.spec.functionKey, err: err.message }, 'sandbox creation failed');
        this.send({ t: 'sandboxFailed', sandboxId: f.sandboxId, error: { code: 'sandbox_failed', message: err.message } });
      },
    );
    this.creating.set(f.sandboxId, p);
  }

  private async deleteSandbox(id: string): Promise<void> {
    await this.creating.get(id);
    const held = this.sandboxes.get(id);
    if (held === undefined) return;
    this.sandboxes.delete(id);
    await held.sandbox.stop();
  }

  private invoke(f: InvokeFrame): void {
    const held = this.sandboxes.get(f.sandboxId);
    if (held === undefined) {
      const r = errorResponse(502, 'sandbox_failed', `sandbox ${f.sandboxId} does not exist on this worker`);
      this.send({ t: 'result', callId: f.callId, sandboxId: f.sandboxId, status: r.status, headers: r.headers, body: r.body, execMs: 0, ...(r.error === undefined ? {} : { error: r.error }) });
      return;
    }
    held.inflight++;
    this.inflight++;
    const limit = this.maxResponseBytes;
    held.sandbox
      .invoke({ callId: f.callId, method: f.method, path: f.path, headers: f.headers, body: f.body, timeoutMs: f.timeoutMs, priceClass: f.priceClass, maxResponseBytes: limit })
      .catch((e: unknown) => errorResponse(502, 'sandbox_failed', `the sandbox failed to run the call: ${asBatonError(e).message}`))
      .then((r: SandboxResponse) => {
        held.inflight--;
        this.inflight--;
        if (r.body.byteLength > limit) {
          r = errorResponse(502, 'response_too_large', `the function's response of ${r.body.byteLength} bytes exceeds the limit of ${limit} bytes`, r.execMs);
        }
        const frame: WorkerFrame = { t: 'result', callId: f.callId, sandboxId: f.sandboxId, status: r.status, headers: r.headers, body: r.body, execMs: r.execMs };
        if (r.error !== undefined) frame.error = r.error;
        this.send(frame);
        if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
      })
      .catch((e: unknown) => this.log.error({ err: e, callId: f.callId }, 'could not report a call result'));
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
      this.log.info({ inflight: this.inflight, timeoutMs: this.cfg.drainTimeoutMs }, 'draining: finishing in-flight calls before stopping');
      let timer: NodeJS.Timeout | undefined;
      const idle = this.inflight === 0 ? Promise.resolve(true) : new Promise<boolean>((r) => this.idleWaiters.push(() => r(true)));
      const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.cfg.drainTimeoutMs)));
      const finished = await Promise.race([idle, timedOut]);
      if (timer !== undefined) clearTimeout(timer);
      if (!finished) this.log.warn({ inflight: this.inflight }, 'drain timeout reached: stopping with calls still running');
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
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    await Promise.allSettled([...this.creating.values()]);
    await Promise.allSettled([...this.sandboxes.keys()].map((id) => this.deleteSandbox(id)));
    await this.closeRuntimes().catch((e: unknown) => this.log.warn({ err: e }, 'error closing the sandbox runtimes'));
    this.ws?.close(CloseCode.normal, 'worker stopping');
    this.ws = undefined;
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
