import { asBatonError, BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { relieveMemoryPressure, type Resident } from '../policies/memory-manager.js';
import type { CreateFrame, InvokeFrame, ResultFrame } from '../protocol/messages.js';
import { chainError, errorResponse, type ChainRequest, type ChainResponse, type Sandbox, type SandboxRequest, type SandboxResponse, type SandboxRuntime } from '../sandbox/runtime.js';
import { MachineController, type MachineCall } from './machine.js';
import { SandboxMeter } from './meter.js';

interface Held {
  num: number;
  sandbox: Sandbox;
  inflight: number;
  meter: SandboxMeter;
  /** Calls running in it, with how to fail them if it has to go. */
  calls: Map<MachineCall, (r: SandboxResponse) => void>;
  /** Class of its function, for an idle sandbox's place in the eviction order. */
  defaultRank: number;
  swapped: boolean;
  /** Being removed by the memory manager: calls that end now failed because of memory. */
  evicting: 'idle' | 'kill' | undefined;
  /** Chain calls its calls made that have not answered yet. */
  chains: number;
}

export interface SandboxHostOptions {
  log: Logger;
  runtimes: Record<string, SandboxRuntime>;
  cores: number;
  /** Memory this worker offers its sandboxes, MB. */
  memoryMb: number;
  /** CPU ids a core maps to (pinning); empty: no pinning. */
  cpus: number[];
  /** Enforce price classes on the machine (false: every call runs at once, the OS shares the cores). */
  classes: boolean;
  memoryTickMs?: number;
  /** Swap sandboxes may use, MB (0 when the machine has none or cgroups cannot direct it). */
  swapMb?: () => number;
  /** Memory of all sandboxes together, MB, when it can be measured as a whole (their parent cgroup). */
  totalMemoryMb?: () => number | undefined;
  /** Kernel OOM kills among all sandboxes together so far (the backstop under the memory manager). */
  totalOomKills?: () => number;
  /** Chain calls one sandbox may have outstanding at once (default 100). */
  maxChainCalls?: number;
  clock?: () => number;
}

/** `functionKey`: the function of the sandbox concerned (the worker routes its frames by it). */
export interface HostEvents {
  /** `functionKey` is undefined only for a call to a sandbox this worker does not have. */
  result(frame: ResultFrame, functionKey: string | undefined): void;
  gone(sandboxId: string, reason: string, functionKey: string): void;
  /** Send a chain call made from the call `parentCallId` to the control plane; never rejects. */
  call(parentCallId: string, req: ChainRequest, functionKey: string): Promise<ChainResponse>;
}

const DEFAULT_MAX_CHAIN_CALLS = 100;

/**
 * The sandboxes of one worker and what the machine does with them: the
 * machine scheduler (cores by price class, preemption by freezing), memory
 * management by class (evict idle, swap, kill as a last resort) and per-call
 * metering (CPU, memory × time, time frozen).
 */
export class SandboxHost {
  readonly sandboxes = new Map<string, Held>();
  private readonly creating = new Map<string, Promise<void>>();
  private machine: MachineController | undefined;
  private readonly clock: () => number;
  private classRanks = new Map<string, number>();
  private ranks = 1;
  private memoryTimer: NodeJS.Timeout | undefined;
  private nextNum = 1;
  inflight = 0;
  /** Memory of the sandboxes at the last sample, MB. */
  usedMb = 0;
  evictions = { idle: 0, swapped: 0, killed: 0 };
  /** Memory of evicted sandboxes whose processes have not exited yet, MB (still in the total until they do). */
  private releasing = new Map<string, number>();
  /** Kernel OOM kills seen but not yet matched to a sandbox that died. */
  private oomSeen = 0;
  private oomCredits = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly o: SandboxHostOptions,
    private readonly events: HostEvents,
  ) {
    this.clock = o.clock ?? (() => performance.now());
    this.oomSeen = o.totalOomKills?.() ?? 0;
    this.machine = o.classes ? new MachineController(o.cores, 1, o.cpus, this.clock, { onRun: (sb, on) => this.meterOf(sb)?.setRunning(on) }) : undefined;
  }

  /** The control plane's price classes, cheapest first (from its welcome). */
  setClasses(names: readonly string[]): void {
    const ranks = new Map(names.map((n, i) => [n, i]));
    if (this.machine !== undefined && (names.length !== this.ranks || names.some((n, i) => this.classRanks.get(n) !== i))) {
      if (this.machine.running + this.machine.waiting > 0) {
        this.o.log.warn('price classes changed while calls run; keeping the old ones until the worker restarts');
        return;
      }
      this.machine = new MachineController(this.o.cores, Math.max(1, names.length), this.o.cpus, this.clock, { onRun: (sb, on) => this.meterOf(sb)?.setRunning(on) });
    }
    this.classRanks = ranks;
    this.ranks = Math.max(1, names.length);
  }

  private rankOf(cls: string): number {
    return this.classRanks.get(cls) ?? 0;
  }

  private meterOf(sb: Sandbox): SandboxMeter | undefined {
    return this.sandboxes.get(sb.id)?.meter;
  }

  get preemptions(): number {
    return this.machine?.preemptions ?? 0;
  }

  /** Sandboxes on cores by class, and calls waiting for a core. */
  load(): { busyByRank: number[]; waiting: number } {
    if (this.machine === undefined) return { busyByRank: [], waiting: 0 };
    return { busyByRank: this.machine.busyByRank(), waiting: this.machine.waiting };
  }

  freeMemoryMb(): number {
    return Math.max(0, this.o.memoryMb - this.usedMb);
  }

  startMemoryManager(): void {
    this.memoryTimer ??= setInterval(() => this.memoryTick(), this.o.memoryTickMs ?? 200);
    this.memoryTimer.unref();
  }

  // ------------------------------------------------------------ sandboxes

  create(f: CreateFrame, codeDir: () => Promise<string | undefined>, onReady: (sb: Sandbox, createMs: number) => void, onFailed: (message: string) => void): void {
    const started = this.clock();
    const runtime = this.o.runtimes[f.spec.runtime];
    const work = (async () => {
      if (runtime === undefined) throw new BatonError('sandbox_failed', `runtime ${f.spec.runtime} is not available on this worker`);
      return runtime.create(f.sandboxId, f.spec, await codeDir());
    })();
    const p = work.then(
      (sandbox) => {
        this.creating.delete(f.sandboxId);
        const held: Held = {
          num: this.nextNum++,
          sandbox,
          inflight: 0,
          meter: new SandboxMeter(this.clock, f.spec.runtime === 'node' ? () => undefined : () => sandbox.control.cpuMicros()),
          calls: new Map(),
          defaultRank: this.rankOf(f.spec.priceClass),
          swapped: false,
          evicting: undefined,
          chains: 0,
        };
        this.sandboxes.set(f.sandboxId, held);
        sandbox.onExit((reason) => {
          if (this.sandboxes.get(f.sandboxId) !== held) return;
          this.sandboxes.delete(f.sandboxId);
          this.machine?.forget(sandbox);
          const oom = this.takeOomKill();
          if (oom) for (const finish of [...held.calls.values()]) finish(errorResponse(503, 'memory_pressure', `the sandbox was killed for memory: this worker offers ${this.o.memoryMb} MB to all its sandboxes together`));
          const why = oom ? `killed for memory (${reason})` : reason;
          this.o.log.warn({ sandboxId: f.sandboxId, fn: f.spec.functionKey, reason: why }, 'sandbox died');
          // after its calls' own results (they say why each call failed), which are already on their way
          setImmediate(() => this.events.gone(f.sandboxId, why, f.spec.functionKey));
        });
        onReady(sandbox, this.clock() - started);
      },
      (e: unknown) => {
        this.creating.delete(f.sandboxId);
        const err = asBatonError(e);
        this.o.log.warn({ sandboxId: f.sandboxId, fn: f.spec.functionKey, err: err.message }, 'sandbox creation failed');
        onFailed(err.message);
      },
    );
    this.creating.set(f.sandboxId, p);
  }

  async delete(id: string): Promise<void> {
    await this.creating.get(id);
    const held = this.sandboxes.get(id);
    if (held === undefined) return;
    this.sandboxes.delete(id);
    this.machine?.forget(held.sandbox);
    await held.sandbox.stop();
  }

  async stopAll(): Promise<void> {
    if (this.memoryTimer !== undefined) clearInterval(this.memoryTimer);
    await Promise.allSettled([...this.creating.values()]);
    await Promise.allSettled([...this.sandboxes.keys()].map((id) => this.delete(id)));
  }

  /** Resolves once no call is running (for draining). */
  whenIdle(): Promise<void> {
    return this.inflight === 0 ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  // ---------------------------------------------------------------- calls

  invoke(f: InvokeFrame, maxResponseBytes: number): void {
    const held = this.sandboxes.get(f.sandboxId);
    if (held === undefined) {
      this.reply(f, errorResponse(502, 'sandbox_failed', `sandbox ${f.sandboxId} does not exist on this worker`), undefined, undefined);
      return;
    }
    held.inflight++;
    this.inflight++;
    const sandbox = held.sandbox;
    let settled = false;
    const call: MachineCall = {
      rank: this.rankOf(f.priceClass),
      arrivedAt: this.clock(),
      sentAt: -1,
      preemptedMs: 0,
      pausedAt: -1,
      send: () => {
        held.meter.begin(call);
        const req: SandboxRequest = { callId: f.callId, method: f.method, path: f.path, headers: f.headers, body: f.body, timeoutMs: f.timeoutMs, priceClass: f.priceClass, maxResponseBytes, chain: (cr) => this.chain(held, call, f.callId, cr) };
        if (f.parentId !== undefined) req.parentId = f.parentId;
        sandbox
          .invoke(req)
          .catch((e: unknown) => errorResponse(502, 'sandbox_failed', `the sandbox failed to run the call: ${asBatonError(e).message}`))
          .then(finish, finish);
      },
    };
    const finish = (r: SandboxResponse): void => {
      if (settled) return;
      settled = true;
      held.calls.delete(call);
      const metered = call.sentAt >= 0 ? held.meter.end(call) : { cpuUs: undefined, mbMs: 0 };
      // a call that ends is not frozen; what it spent frozen so far is final
      const preemptMs = call.preemptedMs + (call.pausedAt >= 0 ? this.clock() - call.pausedAt : 0);
      held.inflight--;
      this.inflight--;
      if (held.evicting === 'kill' && (r.error?.code === 'sandbox_failed' || r.status >= 500)) {
        r = errorResponse(503, 'memory_pressure', `evicted under memory pressure to run a higher class: this worker offers ${this.o.memoryMb} MB to its sandboxes`, r.execMs);
      } else if (r.error?.code === 'sandbox_failed' && sandbox.control.oomKills() > 0) {
        r = errorResponse(503, 'memory_pressure', `the sandbox ran out of memory: this worker offers ${this.o.memoryMb} MB to all its sandboxes together`, r.execMs);
      } else if (r.body.byteLength > maxResponseBytes) {
        r = errorResponse(502, 'response_too_large', `the function's response of ${r.body.byteLength} bytes exceeds the limit of ${maxResponseBytes} bytes`, r.execMs);
      }
      // answer first, then hand the core on (thawing and re-pinning another sandbox is not this call's latency)
      this.reply(f, r, held.sandbox.spec.functionKey, { cpuUs: metered.cpuUs ?? r.cpuUs ?? 0, mbMs: metered.mbMs, preemptMs, waitMs: Math.max(0, (call.sentAt >= 0 ? call.sentAt : this.clock()) - call.arrivedAt) });
      this.machine?.done(sandbox, call);
      if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    held.calls.set(call, finish);
    if (this.machine === undefined) call.send();
    else this.machine.arrive(sandbox, call);
  }

  /**
   * A chain call made from the call `callId` running in `held`: bounded per
   * sandbox, sent to the control plane by the daemon. While it is out the
   * call waits rather than runs, so the machine scheduler may give its core
   * to other work — the callee among it (see MachineController.block).
   */
  private chain(held: Held, call: MachineCall, callId: string, req: ChainRequest): Promise<ChainResponse> {
    const max = this.o.maxChainCalls ?? DEFAULT_MAX_CHAIN_CALLS;
    if (held.chains >= max) {
      return Promise.resolve(chainError('throttled', `ctx.invoke("${req.function}"): sandbox ${held.sandbox.id} of ${held.sandbox.spec.functionKey} already has ${held.chains} chain calls waiting for answers, the most one sandbox may have`));
    }
    held.chains++;
    this.machine?.block(held.sandbox, call);
    const answered = this.events.call(callId, req, held.sandbox.spec.functionKey).catch((e: unknown) => chainError('internal', `the chain call failed on the worker: ${asBatonError(e).message}`));
    return answered.then((r) => {
      held.chains--;
      const machine = this.machine;
      if (machine === undefined) return r;
      return new Promise<ChainResponse>((resolve) => machine.unblock(held.sandbox, call, () => resolve(r)));
    });
  }

  /** Did the kernel kill a sandbox for memory since we last looked? (one kill explains one death) */
  private takeOomKill(): boolean {
    const now = this.o.totalOomKills?.() ?? 0;
    if (now > this.oomSeen) {
      this.oomCredits += now - this.oomSeen;
      this.oomSeen = now;
    }
    if (this.oomCredits === 0) return false;
    this.oomCredits--;
    return true;
  }

  private reply(f: InvokeFrame, r: SandboxResponse, functionKey: string | undefined, m: { cpuUs: number; mbMs: number; preemptMs: number; waitMs: number } | undefined): void {
    const frame: ResultFrame = { t: 'result', callId: f.callId, sandboxId: f.sandboxId, status: r.status, headers: r.headers, body: r.body, execMs: r.execMs };
    if (r.error !== undefined) frame.error = r.error;
    if (m !== undefined) {
      frame.cpuMs = m.cpuUs / 1000;
      frame.mbMs = m.mbMs;
      frame.preemptMs = m.preemptMs;
      frame.waitMs = m.waitMs;
    }
    this.events.result(frame, functionKey);
  }

  // --------------------------------------------------------------- memory

  /**
   * Measure every sandbox and keep the total within what this worker offers,
   * reclaiming by class as relieveMemoryPressure decides: idle sandboxes
   * first, then (with swap) frozen low classes to swap, and only then the
   * lowest class's running sandbox, whose calls fail naming memory.
   */
  memoryTick(): void {
    let sum = 0;
    const residents: Resident[] = [];
    const byNum = new Map<number, Held>();
    for (const held of this.sandboxes.values()) {
      const bytes = held.sandbox.control.memoryBytes();
      if (bytes === undefined) continue;
      const mb = bytes / (1024 * 1024);
      held.meter.sample(mb);
      sum += mb;
      if (held.evicting !== undefined) continue;
      // its class: the highest of its calls, or its function's when idle
      let rank = held.calls.size > 0 ? 0 : held.defaultRank;
      for (const c of held.calls.keys()) rank = Math.max(rank, c.rank);
      byNum.set(held.num, held);
      residents.push({ id: held.num, rank, memMb: mb, running: this.machine?.isRunning(held.sandbox) ?? held.calls.size > 0, swapped: held.swapped, idle: held.calls.size === 0 });
    }
    const whole = this.o.totalMemoryMb?.();
    this.usedMb = whole ?? sum;
    // act a little before the limit: the kernel's hard limit on all sandboxes together is the backstop
    const target = this.o.memoryMb * 0.92;
    if (this.usedMb <= target || residents.length === 0) return;
    // memory being released by sandboxes already evicted is on its way out: do not evict more for it
    let releasing = 0;
    for (const mb of this.releasing.values()) releasing += mb;
    if (this.usedMb - releasing <= target) return;
    // what is in no resident (stem cells, processes being set up) is not ours to reclaim
    const ram = target - Math.max(0, this.usedMb - sum - releasing);
    const d = relieveMemoryPressure(residents, ram, this.o.swapMb?.() ?? 0);
    for (const id of d.evict) this.evict(byNum.get(id), 'idle');
    for (const id of d.swapOut) {
      const held = byNum.get(id);
      if (held !== undefined && held.sandbox.control.swapOut()) {
        held.swapped = true;
        this.evictions.swapped++;
      }
    }
    for (const id of d.kill) this.evict(byNum.get(id), 'kill');
  }

  private evict(held: Held | undefined, how: 'idle' | 'kill'): void {
    if (held === undefined || held.evicting !== undefined) return;
    held.evicting = how;
    this.evictions[how === 'idle' ? 'idle' : 'killed']++;
    const id = held.sandbox.id;
    this.o.log.warn({ sandboxId: id, fn: held.sandbox.spec.functionKey, how, usedMb: Math.round(this.usedMb), limitMb: this.o.memoryMb }, 'memory pressure: removing a sandbox');
    this.sandboxes.delete(id);
    this.machine?.forget(held.sandbox);
    // its calls (if any) fail naming memory; the control plane forgets the sandbox
    for (const finish of [...held.calls.values()]) finish(errorResponse(503, 'memory_pressure', `evicted under memory pressure to run a higher class: this worker offers ${this.o.memoryMb} MB to its sandboxes`));
    this.events.gone(id, how === 'idle' ? 'evicted while idle under memory pressure' : 'killed under memory pressure', held.sandbox.spec.functionKey);
    this.releasing.set(id, held.meter.memoryMb);
    void held.sandbox.stop().finally(() => this.releasing.delete(id));
  }
}
