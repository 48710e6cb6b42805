import type { FunctionRuntime } from '../dataplane/function-runtime.js';
import type { NodeState } from '../dataplane/types.js';
import type { NodeRegistry } from './node-registry.js';

/**
 * Chooses the worker for a new sandbox: power-of-two choices over ready
 * workers, fewest sandboxes per core, with the function's bundle already cached
 * as the tie-breaker.
 */
export class Placement {
  constructor(private readonly nodes: NodeRegistry) {}

  place(fn: FunctionRuntime): NodeState | undefined {
    const ready = this.nodes.readyNodes();
    const n = ready.length;
    if (n === 0) return undefined;
    if (n === 1) return ready[0];
    const a = ready[Math.floor(Math.random() * n)] as NodeState;
    let b = ready[Math.floor(Math.random() * (n - 1))] as NodeState;
    if (b === a) b = ready[n - 1] as NodeState;
    const la = a.sandboxes.size / a.cores;
    const lb = b.sandboxes.size / b.cores;
    if (la !== lb) return la < lb ? a : b;
    return b.bundles.has(fn.record.bundleHash) && !a.bundles.has(fn.record.bundleHash) ? b : a;
  }
}
