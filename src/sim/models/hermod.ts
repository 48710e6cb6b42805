import { ProcessorSharing } from '../../policies/baselines.js';
import { powerOfK } from '../../policies/power-of-k.js';
import type { Rng } from '../../policies/rng.js';
import type { Invocation } from '../workload.js';
import type { ModelContext, SchedulerModel } from './model.js';

/** Hermod as the papers simulate it: least loaded of k sampled machines, early binding, processor sharing, classes ignored. */
export class HermodModel implements SchedulerModel {
  readonly name = 'hermod';
  private readonly ps: ProcessorSharing[];
  private readonly invs: Map<number, Invocation>[];
  private readonly epoch: number[];
  private readonly lastChange: number[];
  private live = 0;

  constructor(
    private readonly cfg: { machines: number; cores: number; k: number },
    private readonly ctx: ModelContext,
    private readonly rng: Rng,
  ) {
    this.ps = Array.from({ length: cfg.machines }, () => new ProcessorSharing(cfg.cores));
    this.invs = Array.from({ length: cfg.machines }, () => new Map<number, Invocation>());
    this.epoch = new Array<number>(cfg.machines).fill(0);
    this.lastChange = new Array<number>(cfg.machines).fill(0);
  }

  outstanding(): number {
    return this.live;
  }

  arrive(inv: Invocation): void {
    this.live++;
    const m = powerOfK(this.cfg.machines, this.cfg.k, (i) => (this.ps[i] as ProcessorSharing).size, this.rng);
    this.account(m);
    (this.ps[m] as ProcessorSharing).add(inv.id, inv.runtime, this.ctx.engine.now);
    this.invs[m]?.set(inv.id, inv);
    this.reschedule(m);
  }

  /** Busy cores between changes: min(cores, tasks). */
  private account(m: number): void {
    const now = this.ctx.engine.now;
    const n = (this.ps[m] as ProcessorSharing).size;
    if (n > 0) this.ctx.metrics.addBusy(m, this.lastChange[m] as number, now, Math.min(this.cfg.cores, n));
    this.lastChange[m] = now;
  }

  private reschedule(m: number): void {
    const now = this.ctx.engine.now;
    const next = (this.ps[m] as ProcessorSharing).nextCompletion(now);
    const epoch = (this.epoch[m] ?? 0) + 1;
    this.epoch[m] = epoch;
    if (next === undefined) return;
    this.ctx.engine.at(next.at, () => {
      if (this.epoch[m] !== epoch) return;
      this.account(m);
      (this.ps[m] as ProcessorSharing).remove(next.id, this.ctx.engine.now);
      const inv = this.invs[m]?.get(next.id) as Invocation;
      this.invs[m]?.delete(next.id);
      this.live--;
      this.ctx.metrics.complete(inv, this.ctx.engine.now);
      this.reschedule(m);
    });
  }
}
