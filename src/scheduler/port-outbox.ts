/** Anything with postMessage: a MessagePort, a Worker, the parentPort. */
export interface PostTarget {
  postMessage(value: unknown): void;
}

/**
 * Messages to another thread, sent as one array per turn of the event loop:
 * a postMessage costs a structured clone and a wake-up of the receiver, so
 * the messages a burst of calls produces travel together (flushed from
 * setImmediate, after the I/O callbacks of this turn). The receiver handles
 * an array (see `receive`).
 */
export class PortOutbox<M> {
  private pending: M[] = [];
  private scheduled = false;
  private closed = false;

  constructor(private readonly target: PostTarget) {}

  send(m: M): void {
    if (this.closed) return;
    this.pending.push(m);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Send now what is queued (before the thread stops, say). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0 || this.closed) return;
    const batch = this.pending;
    this.pending = [];
    this.target.postMessage(batch);
  };

  close(): void {
    this.flush();
    this.closed = true;
  }
}

/** Unpack what a PortOutbox sent (an array of messages) and hand each to `handle`, one failing not stopping the rest. */
export function receive<M>(data: unknown, handle: (m: M) => void, onError: (e: unknown, m: M) => void): void {
  if (!Array.isArray(data)) return;
  for (const m of data as M[]) {
    try {
      handle(m);
    } catch (e) {
      onError(e, m);
    }
  }
}

/** Requests over a PortOutbox answered with a `reply` message carrying the same rid. */
export class PendingReplies {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

  /** A new request id and the promise of its answer. */
  open<T>(): { rid: number; answer: Promise<T> } {
    const rid = this.next;
    this.next = this.next >= 2 ** 31 ? 1 : this.next + 1;
    const answer = new Promise<T>((resolve, reject) => this.waiting.set(rid, { resolve: resolve as (v: unknown) => void, reject }));
    return { rid, answer };
  }

  settle(rid: number, value: unknown, error?: Error): void {
    const w = this.waiting.get(rid);
    if (w === undefined) return;
    this.waiting.delete(rid);
    if (error !== undefined) w.reject(error);
    else w.resolve(value);
  }

  /** Fail every open request (the other side is gone). */
  failAll(error: Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.reject(error);
  }

  get size(): number {
    return this.waiting.size;
  }
}
