import { PriceClassSet } from '../policies/price-classes.js';
import { createRng } from '../policies/rng.js';
import { Engine } from './engine.js';
import { SimMetrics } from './metrics.js';
import { EdfModel } from './models/edf.js';
import { HermodModel } from './models/hermod.js';
import type { SchedulerModel } from './models/model.js';
import { XxModel, type XxConfig } from './models/xx.js';
import { DEFAULT_CLUSTER, type ClusterConfig } from './cluster-config.js';

export { DEFAULT_CLUSTER, type ClusterConfig };
import type { Invocation } from './workload.js';

export type SchedulerName = 'xx' | 'hermod' | 'edf';

export interface RunResult {
  scheduler: SchedulerName;
  arrivals: number;
  completed: number;
  killed: number;
  unfinished: number;
  events: number;
  metrics: SimMetrics;
}

/**
 * Run one scheduler over one workload. The workload is a factory so every
 * scheduler sees the identical sequence of invocations (same seed).
 */
export function simulate(opts: {
  scheduler: SchedulerName;
  cluster: ClusterConfig;
  workload: () => Iterator<Invocation>;
  classes: PriceClassSet;
  tickMs: number;
  durationTicks: number;
  seed: number;
  check?: boolean;
  /** Stop this long after the last arrival even if work remains (overload). */
  drainMs?: number;
}): RunResult {
  const c = opts.cluster;
  const engine = new Engine();
  const pooled = opts.scheduler === 'edf';
  const slack = opts.classes.byRank.map((k) => opts.classes.highest.price / k.price);
  const metrics = new SimMetrics(opts.classes.size, opts.tickMs, opts.durationTicks, pooled ? 1 : c.machines, pooled ? c.machines * c.cores : c.cores, slack);
  const ctx = { engine, metrics, check: opts.check ?? false };
  const rng = createRng(opts.seed ^ 0x5eed);
  let model: SchedulerModel;
  if (opts.scheduler === 'xx') {
    const cfg: XxConfig = { ...c, idleJoinMb: Number.isFinite(c.ramMb) ? c.ramMb * 0.5 : 1, idleDeltaMb: Number.isFinite(c.ramMb) ? c.ramMb * 0.05 : 0 };
    model = new XxModel(cfg, ctx, opts.classes, rng);
  } else if (opts.scheduler === 'hermod') {
    model = new HermodModel(c, ctx, rng);
  } else {
    model = new EdfModel(c.machines * c.cores, ctx, opts.classes);
  }
  const it = opts.workload();
  let arrivals = 0;
  const scheduleNext = (): void => {
    const n = it.next();
    if (n.done === true) return;
    const inv = n.value;
    engine.at(inv.arrival, () => {
      arrivals++;
      model.arrive(inv);
      scheduleNext();
    });
  };
  scheduleNext();
  const end = opts.durationTicks * opts.tickMs;
  engine.run(end + (opts.drainMs ?? 60_000));
  return { scheduler: opts.scheduler, arrivals, completed: metrics.completed, killed: metrics.killed, unfinished: model.outstanding(), events: engine.processed, metrics };
}

export function defaultClasses(): PriceClassSet {
  return new PriceClassSet();
}
