import type { ChildProcess } from 'node:child_process';
import { BatonError } from '../../common/errors.js';
import { PausableTimer } from '../../common/pausable-timer.js';
import { terminate } from '../../common/terminate.js';
import type { Logger } from '../../common/logger.js';
import type { SandboxSpec } from '../../protocol/messages.js';
import { DISCARD_LOGS, type SandboxLog, type SandboxLogSink } from '../log-sink.js';
import { baseEnv, chainError, errorResponse, type ChainResponse, type Sandbox, type SandboxControl, type SandboxRequest, type SandboxResponse, type SandboxRuntime } from '../runtime.js';
import type { Jail } from './jail.js';
import { truncateLine } from './line-splitter.js';
import { parseChainCall, type FromRunner, type RunnerLogLine, type ToRunner } from './runner-protocol.js';
import { StemCellPool, alive, type StemCell } from './stem-cell-pool.js';

interface Pending {
  resolve: (r: SandboxResponse) => void;
  timer: PausableTimer;
  chain: SandboxRequest['chain'];
}

class NodeSandbox implements Sandbox {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private exitCb: ((reason: string) => void) | undefined;
  private stopping = false;
  private readonly child: ChildProcess;
  readonly control: SandboxControl;

  constructor(
    readonly id: string,
    readonly spec: SandboxSpec,
    cell: StemCell,
  ) {
    this.child = cell.child;
    this.control = cell.control;
    this.child.on('message', (m: FromRunner) => {
      if (m.t === 'call') {
        this.chainCall(m);
        return;
      }
      if (m.t !== 'result') return;
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      p.timer.clear();
      const r: SandboxResponse = { status: m.status, headers: m.headers, body: m.body, execMs: m.execMs, cpuUs: m.cpuUs };
      if (m.error !== undefined) r.error = m.error;
      p.resolve(r);
    });
    this.child.once('exit', (code, signal) => {
      const reason = `runner exited (code ${code}, signal ${signal})`;
      for (const p of this.pending.values()) {
        p.timer.clear();
        p.resolve(errorResponse(502, 'sandbox_failed', `sandbox ${id} died during the call: ${reason}`));
      }
      this.pending.clear();
      if (!this.stopping) this.exitCb?.(reason);
    });
  }

  /**
   * `ctx.invoke` inside one of this sandbox's calls. The runner names the
   * call by its IPC id, so it can only make chain calls on behalf of calls
   * running in it; the message itself comes from the function's process and
   * is checked before anything else looks at it.
   */
  private chainCall(m: FromRunner & { t: 'call' }): void {
    const parsed = parseChainCall(m as unknown as Record<string, unknown>);
    if (parsed.reqId === undefined) return;
    const reqId = parsed.reqId;
    const answer = (r: ChainResponse): void => {
      const msg: ToRunner = { t: 'callResult', reqId, status: r.status, headers: r.headers, body: r.body };
      if (r.callId !== undefined) msg.callId = r.callId;
      if (r.error !== undefined) msg.error = { code: r.error.code, message: r.error.message };
      // a runner that died meanwhile needs no answer
      if (alive(this.child)) this.child.send(msg, undefined, undefined, () => undefined);
    };
    if (!parsed.ok) {
      answer(chainError('bad_request', parsed.message));
      return;
    }
    const chain = this.pending.get(parsed.id)?.chain;
    if (chain === undefined) {
      answer(chainError('chain_broken', this.pending.has(parsed.id) ? 'this call cannot make chain calls' : 'the call that made it has already ended'));
      return;
    }
    chain(parsed.req).then(answer, (e: unknown) => answer(chainError('internal', `the chain call failed on the worker: ${e instanceof Error ? e.message : String(e)}`)));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  invoke(req: SandboxRequest): Promise<SandboxResponse> {
    if (!alive(this.child)) return Promise.resolve(errorResponse(502, 'sandbox_failed', `sandbox ${this.id} is not running`));
    const id = this.nextId++;
    const started = performance.now();
    return new Promise((resolve) => {
      // Counts execution only: paused while the sandbox is frozen by a higher class.
      const timer = new PausableTimer(req.timeoutMs, () => {
        this.pending.delete(id);
        resolve(errorResponse(504, 'timeout', `function did not answer within ${req.timeoutMs} ms; its sandbox was stopped`, performance.now() - started));
        // A runaway handler may hold the event loop: the only safe recovery is a new process.
        this.child.kill('SIGKILL');
      });
      if (this.frozen) timer.pause();
      this.pending.set(id, { resolve, timer, chain: req.chain });
      const msg: ToRunner = { t: 'invoke', id, method: req.method, path: req.path, headers: req.headers, body: req.body, callId: req.callId, priceClass: req.priceClass, maxResponseBytes: req.maxResponseBytes };
      if (req.parentId !== undefined) msg.parentId = req.parentId;
      this.child.send(msg, undefined, undefined, (e: Error | null) => {
        if (e === null || !this.pending.has(id)) return;
        this.pending.delete(id);
        timer.clear();
        resolve(errorResponse(502, 'sandbox_failed', `could not hand the call to sandbox ${this.id}: ${e.message}`));
      });
    });
  }

  private frozen = false;

  freeze(): void {
    this.frozen = true;
    this.control.freeze();
    for (const p of this.pending.values()) p.timer.pause();
  }

  thaw(): void {
    this.frozen = false;
    this.control.thaw();
    for (const p of this.pending.values()) p.timer.resume();
  }

  stop(): Promise<void> {
    this.stopping = true;
    // a frozen process cannot act on SIGTERM
    if (this.frozen) this.control.thaw();
    return terminate(this.child, 2000);
  }

  onExit(cb: (reason: string) => void): void {
    this.exitCb = cb;
  }
}

/** A log line from a runner, if well-formed: cut to length, its time never ahead of ours, a call id of sane length or none. */
function checkedLine(l: unknown): RunnerLogLine | undefined {
  if (typeof l !== 'object' || l === null) return undefined;
  const { ts, stream, line, callId } = l as Record<string, unknown>;
  if ((stream !== 'stdout' && stream !== 'stderr') || typeof line !== 'string') return undefined;
  const now = Date.now();
  const out: RunnerLogLine = { ts: typeof ts === 'number' && Number.isFinite(ts) ? Math.min(ts, now) : now, stream, line: truncateLine(line) };
  if (typeof callId === 'string' && callId.length > 0 && callId.length <= 128) out.callId = callId;
  return out;
}

/**
 * From now on the runner's output is this sandbox's log: the lines its
 * capture sends over IPC (tagged with their call) and whatever reaches its
 * stdout/stderr pipes directly (untagged). Closed when its pipes have ended.
 */
function attachLog(cell: StemCell, log: SandboxLog): void {
  cell.output = (stream, line) => log.write(stream, line);
  cell.child.on('message', (m: FromRunner) => {
    if (m.t !== 'logs') return;
    // the runner runs the function's code, which can send anything: keep only well-formed lines
    for (const l of Array.isArray(m.lines) ? (m.lines as unknown[]) : []) {
      const ok = checkedLine(l);
      if (ok !== undefined) log.write(ok.stream, ok.line, ok.callId, ok.ts);
    }
    if (typeof m.dropped === 'number' && m.dropped > 0) log.write('stderr', `[baton: ${m.dropped} log lines dropped: the function wrote them faster than they could be collected]`);
  });
  cell.child.once('close', () => log.close());
}

/** Runtime `node`: a JS module with a default fetch handler, in a pre-started runner process. */
export class NodejsRuntime implements SandboxRuntime {
  readonly name = 'node';
  private readonly pool: StemCellPool;

  constructor(
    log: Logger,
    private readonly jail: Jail,
    track: (cell: StemCell) => void,
    opts: { stemCells?: number } = {},
    private readonly logs: SandboxLogSink = DISCARD_LOGS,
  ) {
    this.pool = new StemCellPool(opts.stemCells ?? 2, log, jail, track);
  }

  async create(id: string, spec: SandboxSpec, codeDir: string | undefined): Promise<Sandbox> {
    if (spec.handler === undefined) throw new BatonError('sandbox_failed', 'runtime node needs a handler');
    if (codeDir === undefined) throw new BatonError('sandbox_failed', 'runtime node needs a code bundle');
    const cell = await this.pool.take();
    const { child, slot } = cell;
    attachLog(cell, this.logs.open(id, spec.functionKey));
    try {
      await this.jail.linkCode(codeDir, slot);
    } catch (e) {
      child.kill('SIGKILL');
      throw new BatonError('sandbox_failed', `cannot prepare the code of ${spec.functionKey}: ${(e as Error).message}`, { cause: e });
    }
    const loaded = await new Promise<FromRunner>((resolve) => {
      const onMessage = (m: FromRunner): void => {
        if (m.t === 'ready' || m.t === 'loadError') {
          child.off('message', onMessage);
          child.off('exit', onExit);
          resolve(m);
        }
      };
      const onExit = (code: number | null): void => {
        child.off('message', onMessage);
        resolve({ t: 'loadError', message: `runner exited while loading (code ${code})` });
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      const load: ToRunner = { t: 'load', codeDir: slot.codeDir, scratchDir: slot.scratchDir, handler: spec.handler ?? '', env: { ...baseEnv(), ...spec.env, TMPDIR: slot.scratchDir, HOME: slot.scratchDir } };
      child.send(load, undefined, undefined, (e: Error | null) => {
        if (e !== null) onExit(null);
      });
    });
    if (loaded.t === 'loadError') {
      child.kill('SIGKILL');
      throw new BatonError('sandbox_failed', `cannot load ${spec.handler}: ${loaded.message}`);
    }
    return new NodeSandbox(id, spec, cell);
  }

  close(): Promise<void> {
    this.pool.close();
    return Promise.resolve();
  }
}
