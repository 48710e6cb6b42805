/**
 * Discrete-event engine: a virtual clock and a binary heap of events ordered
 * by (time, insertion sequence), so equal-time events run in the order they
 * were scheduled and a run is deterministic.
 */
export interface SimEvent {
  at: number;
  seq: number;
  run: () => void;
}

export class Engine {
  now = 0;
  processed = 0;
  private readonly heap: SimEvent[] = [];
  private seq = 0;

  at(time: number, run: () => void): void {
    if (time < this.now) throw new RangeError(`event scheduled in the past: ${time} < ${this.now}`);
    const ev: SimEvent = { at: time, seq: this.seq++, run };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = h[p] as SimEvent;
      if (pe.at < ev.at || (pe.at === ev.at && pe.seq < ev.seq)) break;
      h[i] = pe;
      i = p;
    }
    h[i] = ev;
  }

  get pending(): number {
    return this.heap.length;
  }

  private pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let m = l;
      const le = h[l] as SimEvent;
      if (r < n) {
        const re = h[r] as SimEvent;
        if (re.at < le.at || (re.at === le.at && re.seq < le.seq)) m = r;
      }
      const me = h[m] as SimEvent;
      if (last.at < me.at || (last.at === me.at && last.seq < me.seq)) break;
      h[i] = me;
      i = m;
    }
    h[i] = last;
    return top;
  }

  /** Run events until the queue is empty or the next one is after `until`. */
  run(until = Infinity): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > until) break;
      this.pop();
      this.now = top.at;
      this.processed++;
      top.run();
    }
    if (until !== Infinity && this.now < until) this.now = until;
  }
}
