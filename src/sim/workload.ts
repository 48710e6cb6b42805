import type { PriceClassSet } from '../policies/price-classes.js';
import type { Rng } from '../policies/rng.js';

export interface Invocation {
  id: number;
  fn: number;
  arrival: number;
  /** CPU time it needs, ms. */
  runtime: number;
  rank: number;
  /** Memory it reaches at the end of its run, MB (it starts at 100 MB). */
  memMb: number;
}

export interface Phase {
  /** From this tick on... */
  atTick: number;
  /** ...offer this fraction of the cluster's cores (1 = saturated). */
  load: number;
}

export interface SyntheticConfig {
  tickMs: number;
  durationTicks: number;
  phases: Phase[];
  functions: number;
  /** Pareto shape, the same for every function. */
  alpha: number;
  /** Each function's Pareto scale x_m ~ Normal(mean, sd), clipped below at minMs. */
  xmMeanMs: number;
  xmSdMs: number;
  xmMinMs: number;
  /** Relative weight of each class, cheapest first (bimodal by default). */
  classWeights: number[];
  memMinMb: number;
  memMaxMb: number;
  totalCores: number;
}

export const START_MEM_MB = 100;

export function defaultSynthetic(totalCores: number): SyntheticConfig {
  return {
    tickMs: 1000,
    durationTicks: 60,
    phases: [{ atTick: 0, load: 0.6 }],
    functions: 1000,
    alpha: 2.5,
    xmMeanMs: 50,
    xmSdMs: 15,
    xmMinMs: 5,
    classWeights: [0.35, 0.15, 0.15, 0.35],
    memMinMb: 100,
    memMaxMb: 10_240,
    totalCores,
  };
}

/** Mean runtime of the mix: E[Pareto] = α x_m / (α − 1), averaged over x_m. */
export function meanRuntimeMs(c: SyntheticConfig): number {
  return (c.alpha / (c.alpha - 1)) * c.xmMeanMs;
}

/**
 * Open-loop Poisson arrivals (seeds 000/001 §4.1): the rate follows the
 * phases; each function has its own Pareto runtime distribution; the class is
 * drawn by weight, independent of runtime; memory is uniform in [min, max].
 * Yields invocations in arrival order.
 */
export function* synthetic(c: SyntheticConfig, classes: PriceClassSet, rng: Rng): Generator<Invocation> {
  if (c.classWeights.length !== classes.size) throw new RangeError(`classWeights has ${c.classWeights.length} entries for ${classes.size} classes`);
  const xm = Array.from({ length: c.functions }, () => Math.max(c.xmMinMs, rng.normal(c.xmMeanMs, c.xmSdMs)));
  const totalW = c.classWeights.reduce((a, b) => a + b, 0);
  const cum: number[] = [];
  let acc = 0;
  for (const w of c.classWeights) cum.push((acc += w / totalW));
  const mean = meanRuntimeMs(c);
  const end = c.durationTicks * c.tickMs;
  const phases = [...c.phases].sort((a, b) => a.atTick - b.atTick);
  let t = 0;
  let id = 0;
  let p = 0;
  while (t < end) {
    while (p + 1 < phases.length && (phases[p + 1] as Phase).atTick * c.tickMs <= t) p++;
    const load = (phases[p] as Phase).load;
    const ratePerMs = (load * c.totalCores) / mean;
    const nextPhaseAt = p + 1 < phases.length ? (phases[p + 1] as Phase).atTick * c.tickMs : Infinity;
    const gap = rng.exponential(ratePerMs);
    if (t + gap >= nextPhaseAt) {
      // memoryless: restart the draw at the phase boundary with the new rate
      t = nextPhaseAt;
      continue;
    }
    t += gap;
    if (t >= end) break;
    const fn = rng.int(c.functions);
    const u = rng.next();
    let rank = cum.findIndex((x) => u < x);
    if (rank === -1) rank = classes.size - 1;
    yield { id: id++, fn, arrival: t, runtime: rng.pareto(c.alpha, xm[fn] as number), rank, memMb: rng.uniform(c.memMinMb, c.memMaxMb) };
  }
}
