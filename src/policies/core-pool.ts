/**
 * Core-granular placement with stealing (seed 002 §4): each scheduler shard
 * keeps a stack of idle worker cores; a placement pops one from its own stack;
 * a freed core returns to its home shard; a shard whose stack is empty steals
 * from the shard with the most idle cores. Cores are ints (machine × coresPer
 * + core) in flat Int32Array stacks, so the same layout can later live in a
 * SharedArrayBuffer and be claimed with Atomics.compareExchange. This version
 * is sequential; src/scheduler/shared-core-pool.ts is the one scheduler
 * threads share (same API shape, several times the cost per decision on one
 * thread: see bench/results/sched.md).
 */
export class CorePool {
  private readonly stacks: Int32Array[];
  private readonly tops: Int32Array;
  readonly totalCores: number;

  constructor(
    readonly shards: number,
    readonly machines: number,
    readonly coresPerMachine: number,
  ) {
    if (shards < 1 || machines < 1 || coresPerMachine < 1) throw new RangeError('core pool: shards, machines and coresPerMachine must be positive');
    this.totalCores = machines * coresPerMachine;
    this.stacks = Array.from({ length: shards }, () => new Int32Array(this.totalCores));
    this.tops = new Int32Array(shards);
    // deal machines round-robin to shards, so each shard starts with whole machines
    for (let m = 0; m < machines; m++) for (let c = 0; c < coresPerMachine; c++) this.release(m * coresPerMachine + c);
  }

  /** The shard a core belongs to when it is freed. */
  homeOf(core: number): number {
    return Math.floor(core / this.coresPerMachine) % this.shards;
  }

  idleOn(shard: number): number {
    return this.tops[shard] ?? 0;
  }

  /** Claim an idle core for `shard`, stealing when its own stack is empty. -1 when the cluster has none. */
  acquire(shard: number): number {
    const own = this.pop(shard);
    if (own !== -1) return own;
    let victim = -1;
    let most = 0;
    for (let s = 0; s < this.shards; s++) {
      const n = this.tops[s] ?? 0;
      if (s !== shard && n > most) {
        most = n;
        victim = s;
      }
    }
    return victim === -1 ? -1 : this.pop(victim);
  }

  release(core: number): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.totalCores) throw new RangeError(`core ${core} is not in 0..${this.totalCores - 1}`);
    const s = this.homeOf(core);
    const top = this.tops[s] ?? 0;
    (this.stacks[s] as Int32Array)[top] = core;
    this.tops[s] = top + 1;
  }

  private pop(shard: number): number {
    const top = this.tops[shard] ?? 0;
    if (top === 0) return -1;
    this.tops[shard] = top - 1;
    return (this.stacks[shard] as Int32Array)[top - 1] as number;
  }
}
