import { EdfQueue, edfDeadline } from '../../policies/baselines.js';
import type { PriceClassSet } from '../../policies/price-classes.js';
import type { Invocation } from '../workload.js';
import { invariant, type ModelContext, type SchedulerModel } from './model.js';

interface EdfTask {
  id: number;
  deadline: number;
  inv: Invocation;
}

/**
 * Centralised earliest-deadline-first over all cores pooled (one machine of
 * machines × cores), deadline = arrival + runtime × maxPrice / price; it knows
 * every runtime in advance, the "ideal" end of the comparison. Non-preemptive.
 */
export class EdfModel implements SchedulerModel {
  readonly name = 'edf';
  private readonly queue = new EdfQueue<EdfTask>();
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
    const task = { id: inv.id, deadline: edfDeadline(inv.arrival, inv.runtime, price, this.classes.highest.price), inv };
    if (this.free > 0) this.start(task);
    else this.queue.push(task);
  }

  private start(t: EdfTask): void {
    this.free--;
    const started = this.ctx.engine.now;
    this.ctx.engine.at(started + t.inv.runtime, () => {
      const now = this.ctx.engine.now;
      // the pooled cluster is reported as machine 0 with all cores
      this.ctx.metrics.addBusy(0, started, now);
      this.live--;
      this.ctx.metrics.complete(t.inv, now);
      this.free++;
      const next = this.queue.pop();
      if (next !== undefined) this.start(next);
      if (this.ctx.check) invariant(this.queue.size === 0 || this.free === 0, 'EDF left a core idle while work waited');
    });
    if (this.ctx.check) invariant(this.free >= 0 && this.free <= this.totalCores, `EDF core count out of range: ${this.free}`);
  }
}
