import { ClassQueue } from '../../policies/class-queue.js';
import { IdleLists } from '../../policies/idle-list.js';
import { PriorityMachineScheduler, type MachineDecision } from '../../policies/machine-scheduler.js';
import { relieveMemoryPressure, type Resident } from '../../policies/memory-manager.js';
import { powerOfK } from '../../policies/power-of-k.js';
import type { PriceClassSet } from '../../policies/price-classes.js';
import type { Rng } from '../../policies/rng.js';
import type { ClusterConfig } from '../cluster-config.js';
import { START_MEM_MB, type Invocation } from '../workload.js';
import { invariant, type ModelContext, type SchedulerModel } from './model.js';

export interface XxConfig extends ClusterConfig {
  /** Free memory at which a machine joins an idle list, and the change that rewrites its entry, MB. */
  idleJoinMb: number;
  idleDeltaMb: number;
}

interface Task {
  id: number;
  rank: number;
  inv: Invocation;
  machine: number;
  /** CPU ms still to run. */
  remaining: number;
  startedAt: number;
  core: number;
  epoch: number;
  swapped: boolean;
}

interface Machine {
  sched: PriorityMachineScheduler<Task>;
  tasks: Map<number, Task>;
  swapUsed: number;
}

/**
 * XX (seeds 000/001): arrivals are spread over scheduler shards; each shard
 * takes the next invocation from its price-class multi-queue and places it on
 * the smallest-queue machine of its idle list, or by power-of-k over running
 * counts; each machine runs preemptive priority scheduling over its cores and,
 * with finite memory, swaps and kills by class.
 */
export class XxModel implements SchedulerModel {
  readonly name = 'xx';
  private readonly machines: Machine[];
  private readonly shardQueues: ClassQueue<Task>[];
  private readonly idle: IdleLists;
  private nextShard = 0;
  private live = 0;

  constructor(
    private readonly cfg: XxConfig,
    private readonly ctx: ModelContext,
    private readonly classes: PriceClassSet,
    private readonly rng: Rng,
  ) {
    this.machines = Array.from({ length: cfg.machines }, () => ({ sched: new PriorityMachineScheduler<Task>(cfg.cores, classes.size), tasks: new Map(), swapUsed: 0 }));
    this.shardQueues = Array.from({ length: cfg.shards }, () => new ClassQueue<Task>(classes, 1 << 30));
    this.idle = new IdleLists({ shards: cfg.shards, joinThresholdMb: cfg.idleJoinMb, updateDeltaMb: cfg.idleDeltaMb, k: cfg.k });
    if (Number.isFinite(cfg.ramMb) || cfg.idleList) {
      for (let m = 0; m < cfg.machines; m++) this.memoryTick(m);
    }
  }

  outstanding(): number {
    return this.live;
  }

  arrive(inv: Invocation): void {
    this.live++;
    const shard = this.nextShard;
    this.nextShard = (this.nextShard + 1) % this.cfg.shards;
    const q = this.shardQueues[shard] as ClassQueue<Task>;
    const task: Task = { id: inv.id, rank: inv.rank, inv, machine: -1, remaining: inv.runtime, startedAt: 0, core: -1, epoch: 0, swapped: false };
    q.push(task, (this.classes.byRank[inv.rank] as { name: string }).name, this.ctx.engine.now);
    // Decisions take no simulated time (as in the papers' simulator), so the shard drains at once.
    for (let next = q.pop(this.ctx.engine.now); next !== undefined; next = q.pop(this.ctx.engine.now)) this.place(shard, next.item);
  }

  private load(m: number): number {
    const s = (this.machines[m] as Machine).sched;
    return s.runningCount + s.queuedCount;
  }

  private place(shard: number, task: Task): void {
    let m = -1;
    if (this.cfg.idleList) {
      const e = this.idle.pick(shard);
      if (e !== undefined) {
        m = e.machine;
        e.queueLength++;
      }
    }
    if (m === -1) m = powerOfK(this.cfg.machines, this.cfg.k, (i) => this.load(i), this.rng);
    task.machine = m;
    const machine = this.machines[m] as Machine;
    machine.tasks.set(task.id, task);
    this.apply(m, machine.sched.submit(task));
  }

  private apply(m: number, decisions: MachineDecision<Task>[]): void {
    const now = this.ctx.engine.now;
    const machine = this.machines[m] as Machine;
    for (const d of decisions) {
      const t = d.task;
      if (d.kind === 'preempt') {
        const ran = now - t.startedAt;
        t.remaining -= ran;
        this.ctx.metrics.addBusy(m, t.startedAt, now);
        t.epoch++;
        t.core = -1;
      } else {
        if (t.swapped) {
          // swapped back in to run (swap time is not simulated, as in the papers)
          t.swapped = false;
          machine.swapUsed -= this.memOf(t, now);
        }
        t.startedAt = now;
        t.core = d.core;
        const epoch = ++t.epoch;
        this.ctx.engine.at(now + Math.max(0, t.remaining), () => {
          if (t.epoch === epoch) this.complete(t);
        });
      }
    }
    if (this.ctx.check) this.checkMachine(m);
  }

  private complete(t: Task): void {
    const now = this.ctx.engine.now;
    const machine = this.machines[t.machine] as Machine;
    this.ctx.metrics.addBusy(t.machine, t.startedAt, now);
    machine.tasks.delete(t.id);
    this.live--;
    this.ctx.metrics.complete(t.inv, now);
    this.apply(t.machine, machine.sched.complete(t.id));
  }

  /** Memory in use: grows linearly from 100 MB to its total over the work done so far. */
  private memOf(t: Task, now: number): number {
    const done = t.inv.runtime - t.remaining + (t.core >= 0 ? now - t.startedAt : 0);
    const frac = Math.min(1, Math.max(0, done / t.inv.runtime));
    return START_MEM_MB + (t.inv.memMb - START_MEM_MB) * frac;
  }

  private memoryTick(m: number): void {
    const now = this.ctx.engine.now;
    const machine = this.machines[m] as Machine;
    if (Number.isFinite(this.cfg.ramMb)) {
      const residents: Resident[] = [];
      for (const t of machine.tasks.values()) residents.push({ id: t.id, rank: t.rank, memMb: this.memOf(t, now), running: t.core >= 0, swapped: t.swapped });
      const d = relieveMemoryPressure(residents, this.cfg.ramMb, this.cfg.swapMb);
      const byId = new Map(residents.map((r) => [r.id, r]));
      for (const id of d.swapOut) {
        const t = machine.tasks.get(id) as Task;
        t.swapped = true;
        const r = byId.get(id);
        this.ctx.metrics.swapped(t.rank, r?.memMb ?? 0, r?.running ?? false);
      }
      for (const id of d.kill) this.killTask(m, machine.tasks.get(id) as Task);
      let inRam = 0;
      let swap = 0;
      for (const t of machine.tasks.values()) {
        const mb = this.memOf(t, now);
        if (t.swapped) swap += mb;
        else inRam += mb;
      }
      machine.swapUsed = swap;
      this.ctx.metrics.sampleMemory(m, now, inRam / this.cfg.ramMb, swap);
      if (this.cfg.idleList) this.idle.report(m, this.cfg.ramMb - inRam, this.load(m), this.rng);
    } else if (this.cfg.idleList) {
      this.idle.report(m, this.cfg.idleJoinMb, this.load(m), this.rng);
    }
    if (this.live > 0 || now < this.ctx.metrics.ticks * this.ctx.metrics.tickMs) this.ctx.engine.at(now + this.cfg.memTickMs, () => this.memoryTick(m));
  }

  private killTask(m: number, t: Task): void {
    const now = this.ctx.engine.now;
    const machine = this.machines[m] as Machine;
    machine.tasks.delete(t.id);
    this.live--;
    this.ctx.metrics.kill(t.inv, m);
    if (t.core >= 0) {
      this.ctx.metrics.addBusy(m, t.startedAt, now);
      t.epoch++;
      this.apply(m, machine.sched.complete(t.id));
    } else {
      machine.sched.removeWaiting(t.id);
    }
  }

  private checkMachine(m: number): void {
    const s = (this.machines[m] as Machine).sched;
    const ids = new Set<number>();
    for (const t of s.running()) {
      if (t === undefined) continue;
      invariant(!ids.has(t.id), `machine ${m}: task ${t.id} on two cores`);
      ids.add(t.id);
    }
    invariant(s.queuedCount === 0 || s.runningCount === s.cores, `machine ${m}: ${s.queuedCount} waiting with ${s.cores - s.runningCount} idle cores (not work-conserving)`);
  }
}
