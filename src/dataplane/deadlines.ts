/** A pending deadline; keep it to cancel. */
export interface Deadline {
  at: number;
  fire: () => void;
  prev: Deadline | null;
  next: Deadline | null;
  list: DeadlineList | null;
}

class DeadlineList {
  head: Deadline | null = null;
  tail: Deadline | null = null;

  push(d: Deadline): void {
    d.list = this;
    d.prev = this.tail;
    d.next = null;
    if (this.tail === null) this.head = d;
    else this.tail.next = d;
    this.tail = d;
  }

  unlink(d: Deadline): void {
    if (d.prev === null) this.head = d.next;
    else d.prev.next = d.next;
    if (d.next === null) this.tail = d.prev;
    else d.next.prev = d.prev;
    d.prev = d.next = null;
    d.list = null;
  }
}

/**
 * Every call's deadlines on one timer. Calls of the same duration (the wait
 * limit; a function's timeout) expire in the order they were added, so each
 * duration keeps a plain FIFO list: adding and cancelling are O(1), and the
 * one timer is armed for the earliest head among the few distinct durations.
 * Replaces a setTimeout per call (each a heap insert and a timer object in
 * libuv) on the hot path.
 */
export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private count = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  get size(): number {
    return this.count;
  }

  add(durationMs: number, fire: () => void): Deadline {
    const ms = Math.max(0, Math.round(durationMs));
    let list = this.lists.get(ms);
    if (list === undefined) {
      list = new DeadlineList();
      this.lists.set(ms, list);
    }
    const d: Deadline = { at: this.now() + ms, fire, prev: null, next: null, list: null };
    list.push(d);
    this.count++;
    if (d.at < this.timerAt) this.arm(d.at);
    return d;
  }

  cancel(d: Deadline | undefined): void {
    if (d === undefined || d.list === null) return;
    d.list.unlink(d);
    this.count--;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.run(), Math.max(0, at - this.now()));
    this.timer.unref();
  }

  private run(): void {
    // the timer fired for timerAt: at least that much time has passed, whatever the clock says
    const now = Math.max(this.now(), this.timerAt);
    this.timer = undefined;
    this.timerAt = Infinity;
    const due: Deadline[] = [];
    for (const [ms, list] of this.lists) {
      for (let d = list.head; d !== null && d.at <= now; d = list.head) {
        list.unlink(d);
        this.count--;
        due.push(d);
      }
      if (list.head === null) this.lists.delete(ms);
    }
    for (const d of due) d.fire();
    let next = Infinity;
    for (const list of this.lists.values()) if (list.head !== null && list.head.at < next) next = list.head.at;
    if (next !== Infinity && next < this.timerAt) this.arm(next);
  }
}
