import type { LogLine } from '../protocol/messages.js';

export interface LogQuery {
  callId?: string | undefined;
  /** Epoch ms: only lines at or after. */
  since?: number | undefined;
  limit: number;
}

export interface LogQueryResult {
  /** The newest matching lines (at most `limit`), oldest first. */
  lines: LogLine[];
  /** More lines matched than were returned. */
  truncated: boolean;
}

/**
 * The last lines of one function's log, bounded both in lines and in bytes:
 * a new line pushes out the oldest ones until both bounds hold. Pure (no
 * clock, no I/O); the caller says what a line costs.
 */
export class LogRing {
  private readonly lines: (LogLine | undefined)[];
  private readonly costs: Float64Array;
  /** Index of the oldest line. */
  private head = 0;
  private count = 0;
  private used = 0;

  constructor(
    readonly maxLines: number,
    readonly maxBytes: number,
  ) {
    if (!Number.isInteger(maxLines) || maxLines < 1) throw new RangeError(`maxLines must be a positive integer, got ${maxLines}`);
    if (!Number.isFinite(maxBytes) || maxBytes < 1) throw new RangeError(`maxBytes must be a positive number, got ${maxBytes}`);
    this.lines = new Array<LogLine | undefined>(maxLines);
    this.costs = new Float64Array(maxLines);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held (as the costs given to push). */
  get bytes(): number {
    return this.used;
  }

  /** Add a line; returns the bytes of the lines pushed out for it. */
  push(line: LogLine, cost: number): number {
    let freed = 0;
    // a line bigger than the whole ring still goes in, alone
    while (this.count > 0 && (this.count === this.maxLines || this.used + cost > this.maxBytes)) freed += this.dropOldest();
    const i = (this.head + this.count) % this.maxLines;
    this.lines[i] = line;
    this.costs[i] = cost;
    this.count++;
    this.used += cost;
    return freed;
  }

  /** Remove the oldest line; returns its cost (0 when empty). */
  dropOldest(): number {
    if (this.count === 0) return 0;
    const cost = this.costs[this.head] ?? 0;
    this.lines[this.head] = undefined;
    this.head = (this.head + 1) % this.maxLines;
    this.count--;
    this.used -= cost;
    if (this.count === 0) this.used = 0;
    return cost;
  }

  query(q: LogQuery): LogQueryResult {
    const out: LogLine[] = [];
    let truncated = false;
    // newest first, so a limit keeps the most recent lines
    for (let k = this.count - 1; k >= 0; k--) {
      const line = this.lines[(this.head + k) % this.maxLines];
      if (line === undefined) continue;
      if (q.callId !== undefined && line.callId !== q.callId) continue;
      if (q.since !== undefined && line.ts < q.since) continue;
      if (out.length === q.limit) {
        truncated = true;
        break;
      }
      out.push(line);
    }
    return { lines: out.reverse(), truncated };
  }
}
