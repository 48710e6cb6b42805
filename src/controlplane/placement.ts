import { IdleLists } from '../policies/idle-list.js';
import { PlacementPipeline, capacityFit, classFit, codeLocality, freeCores, idlePreferred, leastLoaded, spread, type NodeView, type PlacementRequest } from '../policies/placement-pipeline.js';
import type { Rng } from '../policies/rng.js';
import type { FunctionRuntime } from '../dataplane/function-runtime.js';
import type { NodeState } from '../dataplane/types.js';
import type { NodeRegistry } from './node-registry.js';

export interface PlacementOptions {
  /** Memory a new sandbox is assumed to need until the worker reports again, MB. */
  sandboxMemoryMb?: number;
  /** A worker with at least this share of its memory free joins the idle list. */
  idleShare?: number;
}

/**
 * Chooses the worker for a new sandbox, by class and by memory (seeds 000/001,
 * seed 002): never a worker without room for it; among workers on the idle
 * list (much free memory) the one with the smallest queue, if it can run the
 * work's class now; else power-of-two sampling over ready workers through the
 * pure placement pipeline — class fit (an idle core, or a lower class it would
 * preempt), then scored by free cores, load (running sandboxes per core),
 * spread and code locality — scanning every worker when the two sampled
 * cannot take it. 'busy' when workers exist but none can run the class now:
 * the work waits for capacity.
 */
export class Placement {
  private readonly pipeline = new PlacementPipeline({
    filters: [capacityFit, classFit],
    scorers: [
      { plugin: freeCores, weight: 1 },
      { plugin: leastLoaded, weight: 1 },
      { plugin: spread, weight: 0.5 },
      { plugin: idlePreferred, weight: 0.5 },
      { plugin: codeLocality, weight: 0.25 },
    ],
    sampleK: 2,
    scanOnMiss: true,
  });
  /** One scheduler shard for now: machines with much free memory list themselves here. */
  private readonly idle = new IdleLists({ shards: 1, joinThresholdMb: 1, updateDeltaMb: 64, k: 1 });
  private readonly nums = new Map<NodeState, number>();
  private readonly byNum = new Map<number, NodeState>();
  private nextNum = 0;
  private readonly sandboxMb: number;
  private readonly idleShare: number;

  constructor(
    private readonly nodes: NodeRegistry,
    private readonly rng: Rng,
    o: PlacementOptions = {},
  ) {
    this.sandboxMb = o.sandboxMemoryMb ?? 64;
    this.idleShare = o.idleShare ?? 0.5;
  }

  private num(n: NodeState): number {
    let i = this.nums.get(n);
    if (i === undefined) {
      i = this.nextNum++;
      this.nums.set(n, i);
      this.byNum.set(i, n);
    }
    return i;
  }

  /** A worker's memory report: on or off the idle list. */
  memoryReport(n: NodeState): void {
    const free = n.status === 'ready' && n.freeMemoryMb >= n.memoryMb * this.idleShare ? n.freeMemoryMb : 0;
    this.idle.report(this.num(n), free, n.busy + n.waiting, this.rng);
  }

  forget(n: NodeState): void {
    const i = this.nums.get(n);
    if (i === undefined) return;
    this.idle.remove(i);
  }

  place(fn: FunctionRuntime, rank: number): NodeState | 'busy' | undefined {
    const ready = this.nodes.readyNodes();
    if (ready.length === 0) return undefined;
    const req: PlacementRequest = { memoryHintMb: this.sandboxMb, rank };
    const listed = this.idle.pick(0);
    if (listed !== undefined) {
      const n = this.byNum.get(listed.machine);
      if (n !== undefined && n.status === 'ready' && capacityFit.accept(view(n, fn, true), req) && n.busy < n.cores) return this.took(n, listed);
    }
    const i = this.pipeline.placeAmong(ready.length, (k) => view(ready[k] as NodeState, fn, this.idle.shardOf(this.num(ready[k] as NodeState)) !== undefined), req, this.rng);
    return i === -1 ? 'busy' : this.took(ready[i] as NodeState);
  }

  /** Count the new sandbox against the worker until it reports its memory again. */
  private took(n: NodeState, listed?: { queueLength: number }): NodeState {
    n.freeMemoryMb = Math.max(0, n.freeMemoryMb - this.sandboxMb);
    if (listed !== undefined) listed.queueLength++;
    return n;
  }
}

function lowestBusyRank(n: NodeState): number {
  if (n.busy < n.cores) return -1;
  for (let r = 0; r < n.busyByRank.length; r++) if ((n.busyByRank[r] ?? 0) > 0) return r;
  return -1;
}

function view(n: NodeState, fn: FunctionRuntime, idle: boolean): NodeView {
  let same = 0;
  for (const sb of fn.sandboxes) if (sb.node === n) same++;
  return {
    id: n.id,
    cores: n.cores,
    busyCores: Math.min(n.cores, n.busy),
    memoryMb: n.memoryMb,
    freeMemoryMb: n.freeMemoryMb,
    running: n.sandboxes.size,
    sameFunction: same,
    hasCode: fn.record.bundleHash !== '' && n.bundles.has(fn.record.bundleHash),
    idle,
    lowestBusyRank: lowestBusyRank(n),
  };
}
