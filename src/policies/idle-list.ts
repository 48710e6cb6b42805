import { powerOfK } from './power-of-k.js';
import type { Rng } from './rng.js';

export interface IdleEntry {
  machine: number;
  freeMemMb: number;
  queueLength: number;
}

export interface IdleListConfig {
  shards: number;
  /** A machine joins when its free memory is at least this. */
  joinThresholdMb: number;
  /** An entry is rewritten only when free memory moved by more than this. */
  updateDeltaMb: number;
  /** Shards compared when joining. */
  k: number;
}

/**
 * Join-idle-queue by memory (seeds 000/001): machines with plenty of free
 * memory put themselves on one scheduler shard's idle list, choosing the shard
 * by power-of-k over shards (fewest members). A shard placing work takes the
 * idle machine with the smallest queue.
 */
export class IdleLists {
  private readonly lists: Map<number, IdleEntry>[];
  /** machine → shard it is listed on */
  private readonly where = new Map<number, number>();

  constructor(private readonly cfg: IdleListConfig) {
    if (!Number.isInteger(cfg.shards) || cfg.shards < 1) throw new RangeError(`idle list shards must be a positive integer, got ${cfg.shards}`);
    this.lists = Array.from({ length: cfg.shards }, () => new Map<number, IdleEntry>());
  }

  shardOf(machine: number): number | undefined {
    return this.where.get(machine);
  }

  sizeOf(shard: number): number {
    return this.lists[shard]?.size ?? 0;
  }

  /**
   * A machine reports its free memory and queue length. It joins, updates or
   * leaves the lists accordingly. Returns the shard it is on afterwards, if any.
   */
  report(machine: number, freeMemMb: number, queueLength: number, rng: Rng): number | undefined {
    const shard = this.where.get(machine);
    if (freeMemMb < this.cfg.joinThresholdMb) {
      if (shard !== undefined) {
        this.lists[shard]?.delete(machine);
        this.where.delete(machine);
      }
      return undefined;
    }
    if (shard !== undefined) {
      const e = this.lists[shard]?.get(machine);
      if (e !== undefined) {
        if (Math.abs(e.freeMemMb - freeMemMb) > this.cfg.updateDeltaMb) e.freeMemMb = freeMemMb;
        e.queueLength = queueLength;
      }
      return shard;
    }
    const target = powerOfK(this.cfg.shards, this.cfg.k, (s) => this.lists[s]?.size ?? 0, rng);
    this.lists[target]?.set(machine, { machine, freeMemMb, queueLength });
    this.where.set(machine, target);
    return target;
  }

  /** The idle machine with the smallest queue on this shard (ties: most free memory, then lowest id), or undefined. */
  pick(shard: number): IdleEntry | undefined {
    let best: IdleEntry | undefined;
    for (const e of this.lists[shard]?.values() ?? []) {
      if (
        best === undefined ||
        e.queueLength < best.queueLength ||
        (e.queueLength === best.queueLength && (e.freeMemMb > best.freeMemMb || (e.freeMemMb === best.freeMemMb && e.machine < best.machine)))
      ) {
        best = e;
      }
    }
    return best;
  }

  remove(machine: number): void {
    const shard = this.where.get(machine);
    if (shard === undefined) return;
    this.lists[shard]?.delete(machine);
    this.where.delete(machine);
  }
}
