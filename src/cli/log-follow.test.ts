import { describe, expect, it } from 'vitest';
import { FOLLOW_OVERLAP_MS, FollowCursor, formatLogLine, parseSinceOption, type LogLineView } from './log-follow.js';

const l = (ts: number, line: string, callId: string | null = null): LogLineView => ({ ts, callId, sandboxId: 'sb', node: 'w', stream: 'stdout', line });

describe('FollowCursor', () => {
  it('prints each line once across overlapping polls, counting identical lines', () => {
    const c = new FollowCursor();
    expect(c.since).toBeUndefined();
    expect(c.take([l(100, 'a'), l(100, 'a'), l(200, 'b')]).map((x) => x.line)).toEqual(['a', 'a', 'b']);
    expect(c.since).toBe(200 - FOLLOW_OVERLAP_MS);
    // the next poll sees the same lines again, one more "a" at 100 that arrived late, and a new one
    expect(c.take([l(100, 'a'), l(100, 'a'), l(100, 'a'), l(200, 'b'), l(300, 'c')]).map((x) => `${x.ts}${x.line}`)).toEqual(['100a', '300c']);
    expect(c.take([l(300, 'c')])).toEqual([]);
  });

  it('never asks from before the user\'s --since, and forgets lines older than its window', () => {
    const c = new FollowCursor(150);
    expect(c.since).toBe(150);
    c.take([l(160, 'x')]);
    expect(c.since).toBe(150);
    c.take([l(160 + 10 * FOLLOW_OVERLAP_MS, 'y')]);
    expect(c.remembered).toBe(1);
  });
});

describe('log line output', () => {
  it('prints TIME CALLID STREAM LINE', () => {
    expect(formatLogLine(l(0, 'hi', 'call-1'))).toBe('1970-01-01T00:00:00.000Z  call-1  stdout  hi');
    expect(formatLogLine({ ...l(0, 'oops'), stream: 'stderr' })).toBe('1970-01-01T00:00:00.000Z  -  stderr  oops');
  });

  it('reads --since as a duration back from now or as a date-time', () => {
    expect(parseSinceOption('5m', 1_000_000)).toBe(1_000_000 - 300_000);
    expect(parseSinceOption('2025-01-31T12:00:00Z', 0)).toBe(Date.UTC(2025, 0, 31, 12));
    expect(parseSinceOption('soon', 0)).toBeUndefined();
  });
});
