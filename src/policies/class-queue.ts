import { Deque } from './deque.js';
import type { PriceClass, PriceClassSet } from './price-classes.js';

export interface Queued<T> {
  item: T;
  cls: PriceClass;
  enqueuedAt: number;
}

export type PushResult<T> = { accepted: true; shed?: Queued<T> } | { accepted: false };

/**
 * The scheduler shard's multi-queue (seeds 000/001 §3): one FIFO per price
 * class. The next item is chosen among the class heads by price × time waited:
 * a head of price p that has waited w beats one of price p' that waited w' when
 * p·w > p'·w' (ties: the higher class). A class with twice the price thus waits
 * about half as long, yet a cheap head that has waited long enough is placed.
 * (The papers compare "the ratio of price class to the time spent in the
 * queue"; taken literally as price / wait the cheapest, longest-waiting item
 * would never lose, so the product is the reading that matches their intent.)
 *
 * Bounded: when full, the lowest class sheds first — an arrival of a higher
 * class evicts the newest item of the lowest non-empty class below it; an
 * arrival that is itself of the lowest class present is refused.
 */
export class ClassQueue<T> {
  private readonly queues: Deque<Queued<T>>[];
  private count = 0;

  constructor(
    private readonly classes: PriceClassSet,
    private readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.queues = classes.byRank.map(() => new Deque<Queued<T>>());
  }

  get size(): number {
    return this.count;
  }

  sizeOf(className: string): number {
    return this.queues[this.classes.get(className).rank]?.length ?? 0;
  }

  push(item: T, className: string, now: number): PushResult<T> {
    const cls = this.classes.get(className);
    let shed: Queued<T> | undefined;
    if (this.count >= this.capacity) {
      let victim = -1;
      for (let r = 0; r < cls.rank; r++) {
        if ((this.queues[r]?.length ?? 0) > 0) {
          victim = r;
          break;
        }
      }
      if (victim === -1) return { accepted: false };
      shed = this.queues[victim]?.popBack();
      this.count--;
    }
    (this.queues[cls.rank] as Deque<Queued<T>>).pushBack({ item, cls, enqueuedAt: now });
    this.count++;
    return shed === undefined ? { accepted: true } : { accepted: true, shed };
  }

  /** Put a preempted or returned item back at the front of its class. */
  pushFront(entry: Queued<T>): void {
    (this.queues[entry.cls.rank] as Deque<Queued<T>>).pushFront(entry);
    this.count++;
  }

  private best(now: number): number {
    let best = -1;
    let bestScore = -1;
    for (let r = this.queues.length - 1; r >= 0; r--) {
      const head = this.queues[r]?.peekFront();
      if (head === undefined) continue;
      // +1e-9 so that heads that arrived "now" still rank by price
      const score = head.cls.price * (now - head.enqueuedAt + 1e-9);
      if (score > bestScore) {
        best = r;
        bestScore = score;
      }
    }
    return best;
  }

  peek(now: number): Queued<T> | undefined {
    const r = this.best(now);
    return r === -1 ? undefined : this.queues[r]?.peekFront();
  }

  pop(now: number): Queued<T> | undefined {
    const r = this.best(now);
    if (r === -1) return undefined;
    this.count--;
    return this.queues[r]?.popFront();
  }
}
