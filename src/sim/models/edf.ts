import { EdfQueue, edfDeadline } from '../../policies/baselines.js';
import type { PriceClassSet } from '../../policies/price-classes.js';
import type { Invocation } from '../workload.js';
import { invariant, type ModelContext, type SchedulerModel } from './model.js';

interface EdfTask {
  id: number;
  deadline: number;
  inv: Invocation;
  remaining: number;
  startedAt: number;
  /** Bumped on every start and preemption; stale heap entries and completion events are ignored. */
  epoch: number;
  running: boolean;
}

interface RunningEntry {
  id: number;
  deadline: number;
  task: EdfTask;
  epoch: number;
}

/**
 * Centralised preemptive earliest-deadline-first over all cores pooled (one
 * machine of machines × cores), deadline = arrival + runtime × maxPrice /
 * price. It knows every runtime in advance: the "ideal" end of the comparison
 * (seed 000 §4.2). An arrival whose deadline is earlier than the latest one
 * running preempts it.
 */
export class EdfModel implements SchedulerModel {
  readonly name = 'edf';
  private readonly queue = new EdfQueue<EdfTask>('min');
  private readonly running = new EdfQueue<RunningEntry>('max');
  private free: number;
  private live = 0;

  constructor(
    private readonly totalCores: number,
    private readonly ctx: ModelContext,
    private readonly classes: PriceClassSet,
  ) {
    this.free = totalCores;
  }

  outstanding(): number {
    return this.live;
  }

  arrive(inv: Invocation): void {
    this.live++;
    const price = (this.classes.byRank[inv.rank] as { price: number }).price;
    const task: EdfTask = { id: inv.id, deadline: edfDeadline(inv.arrival, inv.runtime, price, this.classes.highest.price), inv, remaining: inv.runtime, startedAt: 0, epoch: 0, running: false };
    if (this.free > 0) {
      this.start(task);
      return;
    }
    const latest = this.latestRunning();
    if (latest !== undefined && task.deadline < latest.deadline) {
      this.preempt(latest);
      this.start(task);
    } else {
      this.queue.push(task);
    }
  }

  private latestRunning(): EdfTask | undefined {
    for (let e = this.running.peek(); e !== undefined; e = this.running.peek()) {
      if (e.task.running && e.task.epoch === e.epoch) return e.task;
      this.running.pop();
    }
    return undefined;
  }

  private preempt(t: EdfTask): void {
    const now = this.ctx.engine.now;
    this.ctx.metrics.addBusy(0, t.startedAt, now);
    t.remaining -= now - t.startedAt;
    t.running = false;
    t.epoch++;
    this.free++;
    this.queue.push(t);
  }

  private start(t: EdfTask): void {
    this.free--;
    const now = this.ctx.engine.now;
    t.startedAt = now;
    t.running = true;
    const epoch = ++t.epoch;
    this.running.push({ id: t.id, deadline: t.deadline, task: t, epoch });
    this.ctx.engine.at(now + Math.max(0, t.remaining), () => {
      if (t.epoch !== epoch) return;
      const end = this.ctx.engine.now;
      // the pooled cluster is reported as machine 0 with all cores
      this.ctx.metrics.addBusy(0, t.startedAt, end);
      t.running = false;
      t.epoch++;
      this.live--;
      this.ctx.metrics.complete(t.inv, end);
      this.free++;
      const next = this.queue.pop();
      if (next !== undefined) this.start(next);
      if (this.ctx.check) invariant(this.queue.size === 0 || this.free === 0, 'EDF left a core idle while work waited');
    });
    if (this.ctx.check) invariant(this.free >= 0 && this.free <= this.totalCores, `EDF core count out of range: ${this.free}`);
  }
}
