import type { PriceClass, PriceClassSet } from './price-classes.js';

/** An entry in a ClassQueue. Keep it to remove the item later in O(1). */
export interface Queued<T> {
  item: T;
  cls: PriceClass;
  enqueuedAt: number;
  /** Intrusive links of the class's list; null at the ends. Owned by the queue. */
  prev: Queued<T> | null;
  next: Queued<T> | null;
  /** True while the entry is in the queue. */
  queued: boolean;
}

export type PushResult<T> = { accepted: true; entry: Queued<T>; shed?: Queued<T> } | { accepted: false };

/** One FIFO of entries, as a doubly linked list so any entry can leave in O(1). */
class EntryList<T> {
  head: Queued<T> | null = null;
  tail: Queued<T> | null = null;
  length = 0;

  pushBack(e: Queued<T>): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
    this.length++;
    e.queued = true;
  }

  pushFront(e: Queued<T>): void {
    e.next = this.head;
    e.prev = null;
    if (this.head === null) this.tail = e;
    else this.head.prev = e;
    this.head = e;
    this.length++;
    e.queued = true;
  }

  unlink(e: Queued<T>): void {
    if (e.prev === null) this.head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this.tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = null;
    e.next = null;
    e.queued = false;
    this.length--;
  }
}

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
 * arrival that is itself of the lowest class present is refused. Any entry can
 * be removed in O(1) (a caller that gave up), so dead items never wait in it.
 */
export class ClassQueue<T> {
  private readonly lists: EntryList<T>[];
  private count = 0;

  constructor(
    private readonly classes: PriceClassSet,
    private readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.lists = classes.byRank.map(() => new EntryList<T>());
  }

  get size(): number {
    return this.count;
  }

  sizeOf(className: string): number {
    return this.lists[this.classes.get(className).rank]?.length ?? 0;
  }

  /** Items waiting in the class of this rank. */
  sizeOfRank(rank: number): number {
    return this.lists[rank]?.length ?? 0;
  }

  push(item: T, className: string, now: number): PushResult<T> {
    const cls = this.classes.get(className);
    let shed: Queued<T> | undefined;
    if (this.count >= this.capacity) {
      shed = this.shedBelow(cls.rank);
      if (shed === undefined) return { accepted: false };
    }
    const entry: Queued<T> = { item, cls, enqueuedAt: now, prev: null, next: null, queued: false };
    (this.lists[cls.rank] as EntryList<T>).pushBack(entry);
    this.count++;
    return shed === undefined ? { accepted: true, entry } : { accepted: true, entry, shed };
  }

  /** Evict the newest entry of the lowest non-empty class below `rank`, if any. */
  shedBelow(rank: number): Queued<T> | undefined {
    for (let r = 0; r < rank; r++) {
      const list = this.lists[r] as EntryList<T>;
      const victim = list.tail;
      if (victim !== null) {
        list.unlink(victim);
        this.count--;
        return victim;
      }
    }
    return undefined;
  }

  /** Put a preempted or returned entry back at the front of its class. */
  pushFront(entry: Queued<T>): void {
    if (entry.queued) return;
    (this.lists[entry.cls.rank] as EntryList<T>).pushFront(entry);
    this.count++;
  }

  /** Take an entry out wherever it is. Returns false if it was not queued. */
  remove(entry: Queued<T>): boolean {
    if (!entry.queued) return false;
    (this.lists[entry.cls.rank] as EntryList<T>).unlink(entry);
    this.count--;
    return true;
  }

  private best(now: number): number {
    let best = -1;
    let bestScore = -1;
    for (let r = this.lists.length - 1; r >= 0; r--) {
      const head = this.lists[r]?.head;
      if (head === null || head === undefined) continue;
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
    return r === -1 ? undefined : (this.lists[r]?.head ?? undefined);
  }

  pop(now: number): Queued<T> | undefined {
    const r = this.best(now);
    if (r === -1) return undefined;
    const list = this.lists[r] as EntryList<T>;
    const head = list.head as Queued<T>;
    list.unlink(head);
    this.count--;
    return head;
  }

  /** Remove and return every entry, highest class first. */
  drain(): Queued<T>[] {
    const out: Queued<T>[] = [];
    for (let r = this.lists.length - 1; r >= 0; r--) {
      const list = this.lists[r] as EntryList<T>;
      for (let e = list.head; e !== null; e = list.head) {
        list.unlink(e);
        out.push(e);
      }
    }
    this.count = 0;
    return out;
  }
}
