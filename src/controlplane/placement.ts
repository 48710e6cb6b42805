import { PlacementPipeline, codeLocality, leastLoaded, spread, type NodeView } from '../policies/placement-pipeline.js';
import type { Rng } from '../policies/rng.js';
import type { FunctionRuntime } from '../dataplane/function-runtime.js';
import type { NodeState } from '../dataplane/types.js';
import type { NodeRegistry } from './node-registry.js';

/**
 * Chooses the worker for a new sandbox with the pure placement pipeline:
 * power-of-two sampling over ready workers, scored by load (sandboxes per
 * core), spread (fewest sandboxes of this function) and code locality (bundle
 * already cached). Functions declare no memory, so there is no capacity filter
 * yet; the price-class placement of a later issue adds its plugins here.
 */
export class Placement {
  private readonly pipeline = new PlacementPipeline({
    filters: [],
    scorers: [
      { plugin: leastLoaded, weight: 1 },
      { plugin: spread, weight: 0.5 },
      { plugin: codeLocality, weight: 0.25 },
    ],
    sampleK: 2,
  });

  constructor(
    private readonly nodes: NodeRegistry,
    private readonly rng: Rng,
  ) {}

  place(fn: FunctionRuntime): NodeState | undefined {
    const ready = this.nodes.readyNodes();
    const i = this.pipeline.placeAmong(ready.length, (k) => view(ready[k] as NodeState, fn), { memoryHintMb: 0 }, this.rng);
    return i === -1 ? undefined : ready[i];
  }
}

function view(n: NodeState, fn: FunctionRuntime): NodeView {
  let same = 0;
  for (const sb of fn.sandboxes) if (sb.node === n) same++;
  return {
    id: n.id,
    cores: n.cores,
    busyCores: Math.min(n.cores, n.inflight),
    memoryMb: n.memoryMb,
    freeMemoryMb: n.freeMemoryMb,
    running: n.sandboxes.size,
    sameFunction: same,
    hasCode: fn.record.bundleHash !== '' && n.bundles.has(fn.record.bundleHash),
    idle: false,
  };
}
