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
}

export interface PlacementRequest {
  memoryHintMb: number;
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
}

/**
 * Placement as a pipeline of filter and score plugins with weights (seed 003
 * §5): the candidates (all nodes, or k sampled ones) that pass every filter are
 * scored by Σ weight × score and the best wins; ties go to the earlier
 * candidate. Returns the index into `nodes`, or -1.
 */
export class PlacementPipeline {
  constructor(private readonly cfg: PipelineConfig) {
    for (const s of cfg.scorers) if (!(s.weight >= 0)) throw new RangeError(`placement weight of ${s.plugin.name} must be ≥ 0, got ${s.weight}`);
  }

  place(nodes: readonly NodeView[], req: PlacementRequest, rng: Rng): number {
    return this.placeAmong(nodes.length, (i) => nodes[i] as NodeView, req, rng);
  }

  /** The same over `count` candidates whose views are built on demand (only the sampled ones are). */
  placeAmong(count: number, view: (i: number) => NodeView, req: PlacementRequest, rng: Rng): number {
    const n = count;
    if (n === 0) return -1;
    const k = this.cfg.sampleK <= 0 || this.cfg.sampleK >= n ? n : this.cfg.sampleK;
    let best = -1;
    let bestScore = -Infinity;
    const tried: number[] = [];
    for (let t = 0; t < k; t++) {
      let i: number;
      if (k === n) i = t;
      else {
        do i = rng.int(n);
        while (tried.includes(i));
        tried.push(i);
      }
      const node = view(i);
      if (!this.cfg.filters.every((f) => f.accept(node, req))) continue;
      let s = 0;
      for (const { plugin, weight } of this.cfg.scorers) s += weight * plugin.score(node, req);
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    return best;
  }
}
