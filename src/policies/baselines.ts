/**
 * Baselines the simulator compares XX against (seed 000 §4.2).
 *
 * - ProcessorSharing: Hermod's machine scheduler — every task on a machine
 *   progresses at rate min(1, cores / tasks); classes are ignored.
 * - EdfQueue: a centralised earliest-deadline-first queue over all cores
 *   pooled, deadline = arrival + runtime × maxPrice / price; a 'max' heap of
 *   the running tasks finds the one to preempt.
 *
 * Hermod's placement (least loaded among power-of-k samples, early binding)
 * is `powerOfK` over the machines' task counts.
 */
export class ProcessorSharing {
  /** remaining work (ms of one core) per task id */
  private readonly remaining = new Map<number, number>();
  private lastAt = 0;

  constructor(readonly cores: number) {
    if (cores < 1) throw new RangeError(`cores must be positive, got ${cores}`);
  }

  get size(): number {
    return this.remaining.size;
  }

  private rate(): number {
    return this.remaining.size === 0 ? 0 : Math.min(1, this.cores / this.remaining.size);
  }

  /** Bring every task's remaining work up to time `now`. */
  advance(now: number): void {
    const done = (now - this.lastAt) * this.rate();
    this.lastAt = now;
    if (done <= 0) return;
    for (const [id, r] of this.remaining) this.remaining.set(id, r - done);
  }

  add(id: number, work: number, now: number): void {
    this.advance(now);
    this.remaining.set(id, work);
  }

  remove(id: number, now: number): void {
    this.advance(now);
    this.remaining.delete(id);
  }

  /** The next task to finish and when, or undefined when idle. */
  nextCompletion(now: number): { id: number; at: number } | undefined {
    this.advance(now);
    let best: { id: number; at: number } | undefined;
    const rate = this.rate();
    for (const [id, r] of this.remaining) {
      const at = now + Math.max(0, r) / rate;
      if (best === undefined || at < best.at || (at === best.at && id < best.id)) best = { id, at };
    }
    return best;
  }
}

export function edfDeadline(arrival: number, runtime: number, price: number, maxPrice: number): number {
  return arrival + (runtime * maxPrice) / price;
}

/**
 * Binary heap of tasks by deadline (ties by id), for centralised EDF: 'min'
 * gives the earliest deadline first (the wait queue), 'max' the latest (the
 * running task to preempt).
 */
export class EdfQueue<T extends { id: number; deadline: number }> {
  private readonly heap: T[] = [];

  constructor(private readonly order: 'min' | 'max' = 'min') {}

  get size(): number {
    return this.heap.length;
  }

  peek(): T | undefined {
    return this.heap[0];
  }

  private less(a: T, b: T): boolean {
    const earlier = a.deadline < b.deadline || (a.deadline === b.deadline && a.id < b.id);
    return this.order === 'min' ? earlier : !earlier && !(a.deadline === b.deadline && a.id === b.id);
  }

  push(t: T): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as T, h[p] as T)) break;
      [h[i], h[p]] = [h[p] as T, h[i] as T];
      i = p;
    }
  }

  pop(): T | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as T;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l] as T, h[m] as T)) m = l;
        if (r < h.length && this.less(h[r] as T, h[m] as T)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as T, h[i] as T];
        i = m;
      }
    }
    return top;
  }
}
