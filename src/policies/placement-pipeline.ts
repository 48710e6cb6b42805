import { powerOfK } from './power-of-k.js';
import type { Rng } from './rng.js';

/** What placement sees of a node. */
export interface NodeView {
  id: string;
  cores: number;
  busyCores: number;
  memoryMb: number;
  freeMemoryMb: number;
  /** Sandboxes (or functions) on it. */
  running: number;
  /** Sandboxes of the function being placed. */
  sameFunction: number;
  /** The function's code is already cached there. */
  hasCode: boolean;
  /** On the placing shard's idle list. */
  idle: boolean;
  /** Lowest price-class rank among the sandboxes on its cores; -1 when a core is idle. */
  lowestBusyRank?: number;
}

export interface PlacementRequest {
  memoryHintMb: number;
  /** Price-class rank of the work the new sandbox is for (classFit). */
  rank?: number;
}

export interface FilterPlugin {
  name: string;
  accept(n: NodeView, r: PlacementRequest): boolean;
}

/** Scores in [0, 1]; higher is better. */
export interface ScorePlugin {
  name: string;
  score(n: NodeView, r: PlacementRequest): number;
}

export const capacityFit: FilterPlugin = { name: 'capacity-fit', accept: (n, r) => n.freeMemoryMb >= r.memoryHintMb };
/**
 * Core-granular class fit (seeds 000/001, 002): the node has an idle core, or
 * the new work's class is above the lowest class on its cores (it would
 * preempt that). Otherwise the work waits rather than queue behind its equals.
 */
export const classFit: FilterPlugin = {
  name: 'class-fit',
  accept: (n, r) => n.busyCores < n.cores || r.rank === undefined || (n.lowestBusyRank ?? -1) < r.rank,
};
export const leastLoaded: ScorePlugin = { name: 'least-loaded', score: (n) => 1 / (1 + n.running / Math.max(1, n.cores)) };
export const freeCores: ScorePlugin = { name: 'free-cores', score: (n) => (n.cores - n.busyCores) / Math.max(1, n.cores) };
export const codeLocality: ScorePlugin = { name: 'code-locality', score: (n) => (n.hasCode ? 1 : 0) };
export const spread: ScorePlugin = { name: 'spread', score: (n) => 1 / (1 + n.sameFunction) };
export const idlePreferred: ScorePlugin = { name: 'idle-list', score: (n) => (n.idle ? 1 : 0) };

export interface PipelineConfig {
  filters: FilterPlugin[];
  scorers: { plugin: ScorePlugin; weight: number }[];
  /** Score only k sampled candidates (power-of-k); 0 = all. */
  sampleK: number;
  /** When none of the k sampled candidates passes the filters, look at every node before giving up. */
  scanOnMiss?: boolean;
}

/**
 * Placement as a pipeline of filter and score plugins with weights (seed 003
 * §5): the candidates (all nodes, or k sampled ones: power-of-k choices, the
 * same sampling the simulator uses) that pass every filter are scored by
 * Σ weight × score and the best wins; ties go to the earlier candidate.
 * Returns the index into `nodes`, or -1.
 */
export class PlacementPipeline {
  constructor(private readonly cfg: PipelineConfig) {
    for (const s of cfg.scorers) if (!(s.weight >= 0)) throw new RangeError(`placement weight of ${s.plugin.name} must be ≥ 0, got ${s.weight}`);
  }

  place(nodes: readonly NodeView[], req: PlacementRequest, rng: Rng): number {
    return this.placeAmong(nodes.length, (i) => nodes[i] as NodeView, req, rng);
  }

  /** The same over `count` candidates whose views are built on demand (only the examined ones are). */
  placeAmong(count: number, view: (i: number) => NodeView, req: PlacementRequest, rng: Rng): number {
    if (count === 0) return -1;
    // powerOfK keeps the lowest load: a node that fails a filter has infinite load, else minus its score
    const load = (i: number): number => {
      const node = view(i);
      for (const f of this.cfg.filters) if (!f.accept(node, req)) return Infinity;
      let s = 0;
      for (const { plugin, weight } of this.cfg.scorers) s += weight * plugin.score(node, req);
      return -s;
    };
    const k = this.cfg.sampleK <= 0 ? count : this.cfg.sampleK;
    let loads: number[] = [];
    const recording = (i: number): number => {
      const l = load(i);
      loads[i] = l;
      return l;
    };
    let best = powerOfK(count, k, recording, rng);
    if (best !== -1 && (loads[best] ?? Infinity) === Infinity) best = -1;
    if (best === -1 && this.cfg.scanOnMiss === true && k < count) {
      loads = [];
      best = powerOfK(count, count, recording, rng);
      if (best !== -1 && (loads[best] ?? Infinity) === Infinity) best = -1;
    }
    return best;
  }
}
