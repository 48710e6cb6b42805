/**
 * `baton logs --follow` without duplicates. Pure: no I/O, no clock.
 *
 * Each poll asks for the lines since a cursor a little before the newest line
 * seen, because a worker may deliver a line late (its sandbox batches output,
 * workers answer at slightly different moments), so the windows of two polls
 * overlap. Lines already printed are recognised by their content and time;
 * identical lines written in the same millisecond are counted, so each is
 * still printed once.
 */

import { parseDuration } from '../common/duration.js';

/** A line as the logs API returns it. */
export interface LogLineView {
  ts: number;
  callId: string | null;
  sandboxId: string;
  node: string;
  stream: string;
  line: string;
}

/** How far before the newest line seen each poll starts: lines that arrive later than this behind it are missed. */
export const FOLLOW_OVERLAP_MS = 5_000;

function keyOf(l: LogLineView): string {
  return `${l.ts}\0${l.node}\0${l.sandboxId}\0${l.callId ?? ''}\0${l.stream}\0${l.line}`;
}

export class FollowCursor {
  private newest = -Infinity;
  /** Lines printed, by key, with how many times each was. */
  private readonly printed = new Map<string, { ts: number; count: number }>();

  /** `start`: the user's --since (epoch ms), if any. */
  constructor(private readonly start?: number) {}

  /** What the next poll asks for: lines at or after this (epoch ms), or everything. */
  get since(): number | undefined {
    if (this.newest === -Infinity) return this.start;
    const s = this.newest - FOLLOW_OVERLAP_MS;
    return this.start === undefined ? s : Math.max(s, this.start);
  }

  /** Of one poll's lines (oldest first), those not printed before, in order; they count as printed now. */
  take(lines: readonly LogLineView[]): LogLineView[] {
    const inThis = new Map<string, number>();
    const fresh: LogLineView[] = [];
    for (const l of lines) {
      const key = keyOf(l);
      const n = (inThis.get(key) ?? 0) + 1;
      inThis.set(key, n);
      const before = this.printed.get(key);
      if (n > (before?.count ?? 0)) {
        fresh.push(l);
        this.printed.set(key, { ts: l.ts, count: n });
      }
      if (l.ts > this.newest) this.newest = l.ts;
    }
    // what is older than the next window cannot come back
    const since = this.since;
    if (since !== undefined) for (const [key, p] of this.printed) if (p.ts < since) this.printed.delete(key);
    return fresh;
  }

  /** Lines remembered for recognising repeats (bounded by what the overlap window holds). */
  get remembered(): number {
    return this.printed.size;
  }
}

/** `TIME CALLID STREAM LINE`, one line of text. */
export function formatLogLine(l: LogLineView): string {
  return `${new Date(l.ts).toISOString()}  ${l.callId ?? '-'}  ${l.stream.padEnd(6)}  ${l.line}`;
}

/**
 * `--since`: a duration back from `now` (30s, 5m, 1h30m) or a date-time
 * (2025-01-31T12:00:00Z). Returns epoch ms, or undefined when it is neither.
 */
export function parseSinceOption(text: string, now: number): number | undefined {
  try {
    return now - parseDuration(text);
  } catch {
    // not a duration: maybe a date-time
  }
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : undefined;
}
