import { PriorityMachineScheduler, type MachineDecision } from '../policies/machine-scheduler.js';
import type { Sandbox } from '../sandbox/runtime.js';

/** One call on this worker, from arrival to result, with what the machine did to it. */
export interface MachineCall {
  rank: number;
  arrivedAt: number;
  /** When it was handed to its sandbox (-1 while held waiting for a core). */
  sentAt: number;
  /** Time it spent frozen by higher classes, ms. */
  preemptedMs: number;
  /** Start of the current frozen stretch, -1 when not frozen. */
  pausedAt: number;
  /** Chain calls it made (`ctx.invoke`) that have not answered yet: while > 0 it waits, it does not run. */
  chains?: number;
  send(): void;
}

/** A sandbox with work: the unit the machine scheduler gives cores to. */
interface Job {
  id: number;
  rank: number;
  sandbox: Sandbox;
  calls: Set<MachineCall>;
  /** Has been on a core before: taking it off means freezing it. */
  started: boolean;
  frozen: boolean;
  core: number;
  appliedRank: number;
  /** Of `calls`, those waiting for chain calls they made. */
  blocked: number;
  /** Every call waits for a chain call: the sandbox gave up its core and is not in the scheduler. */
  parked: boolean;
  /** Chain answers held until the sandbox has a core again. */
  resumes: (() => void)[];
}

export interface MachineObserver {
  /** A sandbox was frozen (preempted) or thawed. */
  onPreempt?(sandbox: Sandbox): void;
  onResume?(sandbox: Sandbox): void;
  /** Between these the sandbox has a core: its CPU and memory may be billed to its calls. */
  onRun?(sandbox: Sandbox, running: boolean): void;
}

/**
 * The machine scheduler of one worker (seeds 000/001 §3, seed 002 §3): at most
 * `cores` sandboxes run calls at once; a sandbox's class is the highest class
 * of its calls; a higher class arriving when every core is busy preempts the
 * lowest class running (the most recently started among equals), whose
 * sandbox is frozen and resumes when a core frees — before later work of its
 * class. FIFO within a class. A running sandbox is pinned to its core where a
 * cpuset exists. Every decision comes from PriorityMachineScheduler, the same
 * policy the simulator runs; this class only carries them out.
 */
export class MachineController {
  private readonly sched: PriorityMachineScheduler<Job>;
  private readonly jobs = new Map<Sandbox, Job>();
  /** What was last written to each sandbox's cgroup, across its jobs. */
  private readonly written = new WeakMap<Sandbox, { rank: number; cpu: number }>();
  private nextId = 1;
  preemptions = 0;

  constructor(
    readonly cores: number,
    readonly ranks: number,
    /** CPU ids a core index maps to (core k → cpus[k % cpus.length]); '' disables pinning. */
    private readonly cpus: readonly number[],
    private readonly clock: () => number,
    private readonly observer: MachineObserver = {},
  ) {
    this.sched = new PriorityMachineScheduler<Job>(cores, ranks);
  }

  get running(): number {
    return this.sched.runningCount;
  }

  get waiting(): number {
    return this.sched.queuedCount;
  }

  /** Sandboxes on cores by class (index = rank), for the control plane's placement. */
  busyByRank(): number[] {
    const out = new Array<number>(this.ranks).fill(0);
    for (const j of this.sched.running()) if (j !== undefined) out[j.rank] = (out[j.rank] ?? 0) + 1;
    return out;
  }

  isRunning(sandbox: Sandbox): boolean {
    const j = this.jobs.get(sandbox);
    return j !== undefined && this.sched.isRunning(j.id);
  }

  /** A call for this sandbox arrived: it is sent now if its sandbox has (or gets) a core, else when it does. */
  arrive(sandbox: Sandbox, call: MachineCall): void {
    let job = this.jobs.get(sandbox);
    if (job === undefined) {
      job = { id: this.nextId++, rank: call.rank, sandbox, calls: new Set(), started: false, frozen: false, core: -1, appliedRank: -1, blocked: 0, parked: false, resumes: [] };
      this.jobs.set(sandbox, job);
      job.calls.add(call);
      this.apply(this.sched.submit(job));
      return;
    }
    job.calls.add(call);
    if (job.parked) {
      // a sandbox whose calls all wait for chain calls (one may be this very call's caller) needs a core again
      this.unpark(job);
      return;
    }
    // On a core, or frozen mid-run (it will see the call when thawed): hand it over now.
    if (job.frozen || this.sched.isRunning(job.id)) this.sendCall(job, call);
    if (call.rank > job.rank) this.apply(this.sched.setRank(job, call.rank));
    else this.applyRank(job);
  }

  /**
   * A call now waits for a chain call it made (`ctx.invoke`). Call chains and
   * cores: a parent that kept its core while its child runs would deadlock a
   * worker whose cores are all held by waiting parents (on one core: the
   * parent holds it, the child waits for it). So a call waiting for a child
   * is treated like a process asleep in I/O: once every call of a sandbox
   * waits, the sandbox leaves its core — not frozen, since it must be able to
   * take the answer — and the core goes to the next work in line, which may
   * be the child itself. The sandbox keeps its class's CPU weight, so
   * whatever it does meanwhile still competes at its class. It asks for a
   * core again when an answer comes (see unblock) or a new call arrives.
   */
  block(sandbox: Sandbox, call: MachineCall): void {
    const job = this.jobs.get(sandbox);
    if (job === undefined || !job.calls.has(call)) return;
    call.chains = (call.chains ?? 0) + 1;
    if (call.chains > 1) return;
    job.blocked++;
    if (job.blocked === job.calls.size) this.park(job);
  }

  /**
   * A chain call answered; `deliver` hands its answer to the sandbox: now if
   * the sandbox is on a core (or frozen there: it sees the answer when
   * thawed), else once the scheduler gives it a core again — before later
   * work of its class, as after a preemption. An answer while other chain
   * calls of the same call are still out is delivered at once: the call goes
   * on waiting, and taking an answer in is a moment's work.
   */
  unblock(sandbox: Sandbox, call: MachineCall, deliver: () => void): void {
    const job = this.jobs.get(sandbox);
    if (job === undefined || !job.calls.has(call) || (call.chains ?? 0) === 0) {
      deliver();
      return;
    }
    call.chains = (call.chains ?? 1) - 1;
    if (call.chains > 0) {
      deliver();
      return;
    }
    job.blocked--;
    if (job.parked) {
      job.resumes.push(deliver);
      this.unpark(job);
    } else if (job.frozen || this.sched.isRunning(job.id)) {
      deliver();
    } else {
      // back in line for a core (a new call woke it): the answer waits with it
      job.resumes.push(deliver);
    }
  }

  private park(job: Job): void {
    job.parked = true;
    if (this.sched.isRunning(job.id)) {
      job.core = -1;
      this.apply(this.sched.complete(job.id));
    } else {
      // waiting: preempted (frozen) after it asked; it must run to take the answer
      this.sched.removeWaiting(job.id);
      if (job.frozen) this.thaw(job);
    }
  }

  private unpark(job: Job): void {
    job.parked = false;
    let top = 0;
    for (const c of job.calls) top = Math.max(top, c.rank);
    job.rank = top;
    this.apply(this.sched.submit(job, true));
  }

  /** A call ended (answered, timed out, or its sandbox died). */
  done(sandbox: Sandbox, call: MachineCall): void {
    const job = this.jobs.get(sandbox);
    if (job === undefined || !job.calls.delete(call)) return;
    if ((call.chains ?? 0) > 0) {
      call.chains = 0;
      job.blocked--;
    }
    if (call.pausedAt >= 0) {
      call.preemptedMs += this.clock() - call.pausedAt;
      call.pausedAt = -1;
    }
    if (job.calls.size === 0) {
      this.jobs.delete(sandbox);
      if (job.frozen) this.thaw(job);
      this.observer.onRun?.(sandbox, false);
      if (this.sched.isRunning(job.id)) this.apply(this.sched.complete(job.id));
      else this.sched.removeWaiting(job.id);
      return;
    }
    let top = 0;
    for (const c of job.calls) top = Math.max(top, c.rank);
    if (job.parked) {
      job.rank = top;
      return;
    }
    // the call that ended was the only one running: the others wait for chain calls
    if (job.blocked === job.calls.size) {
      this.park(job);
      return;
    }
    if (top !== job.rank) this.apply(this.sched.setRank(job, top));
  }

  /** The sandbox is gone: drop its work (its calls were answered by whoever saw it die). */
  forget(sandbox: Sandbox): void {
    const job = this.jobs.get(sandbox);
    if (job === undefined) return;
    for (const c of [...job.calls]) this.done(sandbox, c);
  }

  private apply(decisions: MachineDecision<Job>[]): void {
    for (const d of decisions) {
      const job = d.task;
      if (d.kind === 'preempt') {
        this.preemptions++;
        job.frozen = true;
        job.core = -1;
        const now = this.clock();
        for (const c of job.calls) if (c.sentAt >= 0 && c.pausedAt < 0) c.pausedAt = now;
        this.observer.onRun?.(job.sandbox, false);
        job.sandbox.freeze();
        this.observer.onPreempt?.(job.sandbox);
        continue;
      }
      job.core = d.core;
      if (this.cpus.length > 0) {
        // a sandbox keeps its last pin between calls: write the cpuset only when the core changes
        const cpu = this.cpus[d.core % this.cpus.length] as number;
        const applied = this.applied(job.sandbox);
        if (applied.cpu !== cpu) {
          applied.cpu = cpu;
          job.sandbox.control.pin(cpu, this.cpus.join(','));
        }
      }
      this.applyRank(job);
      if (job.frozen) this.thaw(job);
      this.observer.onRun?.(job.sandbox, true);
      job.started = true;
      // calls not handed over yet (a first start, or ones that arrived while it waited for a core again)
      for (const c of job.calls) this.sendCall(job, c);
      for (const resume of job.resumes.splice(0)) resume();
    }
  }

  private applyRank(job: Job): void {
    if (job.appliedRank === job.rank) return;
    job.appliedRank = job.rank;
    // and its class (CPU weight, kill order) only when it changes: cgroup and /proc writes cost
    const applied = this.applied(job.sandbox);
    if (applied.rank === job.rank) return;
    applied.rank = job.rank;
    job.sandbox.control.setRank(job.rank, this.ranks);
  }

  private applied(sb: Sandbox): { rank: number; cpu: number } {
    let w = this.written.get(sb);
    if (w === undefined) {
      w = { rank: -1, cpu: -1 };
      this.written.set(sb, w);
    }
    return w;
  }

  private thaw(job: Job): void {
    job.frozen = false;
    const now = this.clock();
    for (const c of job.calls) {
      if (c.pausedAt >= 0) {
        c.preemptedMs += now - c.pausedAt;
        c.pausedAt = -1;
      }
    }
    job.sandbox.thaw();
    this.observer.onResume?.(job.sandbox);
  }

  private sendCall(job: Job, c: MachineCall): void {
    if (c.sentAt >= 0) return;
    c.sentAt = this.clock();
    if (job.frozen) c.pausedAt = c.sentAt;
    c.send();
  }
}
