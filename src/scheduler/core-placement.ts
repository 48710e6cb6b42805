import type { CoreClaims, Placed } from '../dataplane/dispatcher.js';
import type { FunctionRuntime } from '../dataplane/function-runtime.js';
import type { NodeState } from '../dataplane/types.js';
import { PlacementPipeline, capacityFit, classFit, codeLocality, freeCores, leastLoaded, spread, type NodeView, type PlacementRequest } from '../policies/placement-pipeline.js';
import type { Rng } from '../policies/rng.js';
import type { NodeMirror } from './node-mirror.js';
import type { SharedCorePool } from './shared-core-pool.js';
import type { SharedNodes } from './shared-nodes.js';

export interface CorePlacementOptions {
  /** Memory a new sandbox is assumed to need until its worker reports again, MB. */
  sandboxMemoryMb?: number;
  /** Idle cores tried before giving up on the idle path (ones on workers without room are put back after). */
  attempts?: number;
}

/**
 * Placement on one scheduler core, over the cluster's shared capacity
 * (seed 002, core-granular): a new sandbox for a waiting call takes an idle
 * worker core from this core's own list of idle cores, or steals one from
 * another core's list when its own is empty (SharedCorePool), on a worker
 * with room for it in memory (taken in SharedNodes with compareExchange, so
 * two cores never both take the last of it). The claimed core is held while
 * the sandbox starts and then runs the call. With no idle core anywhere, the
 * call may still preempt: power-of-two sampling over this core's ready
 * workers through the pure placement pipeline — class fit (a lower class on
 * the cores of the worker, from the shared busy counts), memory, then scored
 * by free cores, load, spread and code locality. 'busy' when workers exist
 * but none can run the class now: the call waits for capacity.
 *
 * It also implements the dispatcher's CoreClaims: a warm sandbox that starts
 * running claims one of its worker's idle cores (acquireOn) and gives it back
 * when it goes idle. Cores of a worker that left are not given back (the main
 * thread withdraws them and resets the slot), and a core handed out for such
 * a worker is dropped rather than used.
 */
export class CorePlacement implements CoreClaims {
  private readonly pipeline = new PlacementPipeline({
    filters: [capacityFit, classFit],
    scorers: [
      { plugin: freeCores, weight: 1 },
      { plugin: leastLoaded, weight: 1 },
      { plugin: spread, weight: 0.5 },
      { plugin: codeLocality, weight: 0.25 },
    ],
    sampleK: 2,
    scanOnMiss: true,
  });
  private readonly sandboxMb: number;
  private readonly attempts: number;
  private readonly aside: number[] = [];

  constructor(
    private readonly nodes: SharedNodes,
    private readonly pool: SharedCorePool,
    /** This core's shard of the pool. */
    private readonly shard: number,
    /** This core's view of a slot's worker, if it has one. */
    private readonly mirror: (slot: number) => NodeMirror | undefined,
    /** Workers this core has a data link to and may place on. */
    private readonly ready: () => readonly NodeMirror[],
    private readonly rng: Rng,
    o: CorePlacementOptions = {},
  ) {
    this.sandboxMb = o.sandboxMemoryMb ?? 64;
    this.attempts = o.attempts ?? 8;
  }

  place(fn: FunctionRuntime, rank: number, forCall: boolean): Placed | 'busy' | undefined {
    const ready = this.ready();
    if (ready.length === 0 && this.nodes.readyCount() === 0) return undefined;
    const idle = this.idleCore();
    if (idle !== undefined) {
      if (!forCall) {
        // an autoscaler's sandbox: no call waits for it, so it only goes where a core is idle
        this.pool.release(idle.core);
        return { node: idle.node, core: -1 };
      }
      return idle;
    }
    if (ready.length === 0) return 'busy';
    // no idle core anywhere: a call may preempt a lower class on some worker
    const req: PlacementRequest = { memoryHintMb: this.sandboxMb, rank };
    for (let tries = 0; tries < 2; tries++) {
      const i = this.pipeline.placeAmong(ready.length, (k) => this.view(ready[k] as NodeMirror, fn), req, this.rng);
      if (i === -1) return 'busy';
      const n = ready[i] as NodeMirror;
      if (this.nodes.takeMemory(n.slot, this.sandboxMb)) return { node: n, core: -1 };
    }
    return 'busy';
  }

  /** An idle core on a worker this core can place on, with its memory taken; undefined when there is none. */
  private idleCore(): Placed | undefined {
    const aside = this.aside;
    let found: Placed | undefined;
    for (let i = 0; i < this.attempts && found === undefined; i++) {
      const core = this.pool.acquire(this.shard);
      if (core === -1) break;
      const slot = Math.floor(core / this.pool.coresPerMachine);
      const m = this.mirror(slot);
      if (m === undefined || m.status !== 'ready' || !this.nodes.isReady(slot)) {
        // a worker that left (or is leaving): its cores are not given back; the main thread resets its slot
        if (!this.nodes.isReady(slot)) continue;
        aside.push(core);
        continue;
      }
      if (this.nodes.takeMemory(slot, this.sandboxMb)) found = { node: m, core };
      else aside.push(core);
    }
    for (const core of aside) this.pool.release(core);
    aside.length = 0;
    return found;
  }

  private view(n: NodeMirror, fn: FunctionRuntime): NodeView {
    let same = 0;
    for (const sb of fn.sandboxes) if (sb.node === n) same++;
    const slot = n.slot;
    const cores = this.nodes.cores(slot);
    return {
      id: n.id,
      cores,
      busyCores: Math.min(cores, this.nodes.busy(slot)),
      memoryMb: n.memoryMb,
      freeMemoryMb: this.nodes.freeMemoryMb(slot),
      running: n.sandboxes.size,
      sameFunction: same,
      hasCode: fn.record.bundleHash !== '' && n.bundles.has(fn.record.bundleHash),
      idle: false,
      lowestBusyRank: this.nodes.lowestBusyRank(slot),
    };
  }

  // ---- CoreClaims ----

  claimOn(node: NodeState): number {
    const m = node as NodeMirror;
    if (m.status !== 'ready') return -1;
    const core = this.pool.acquireOn(m.slot);
    if (core === -1) return -1;
    if (!this.nodes.isReady(m.slot)) return -1; // left meanwhile: dropped, see the class comment
    return core;
  }

  release(node: NodeState, core: number): void {
    const m = node as NodeMirror;
    if (m.status === 'ready' && this.nodes.isReady(m.slot)) this.pool.release(core);
  }

  busyChanged(node: NodeState, from: number, to: number): void {
    const m = node as NodeMirror;
    if (m.current) this.nodes.moveBusy(m.slot, from, to);
  }
}
