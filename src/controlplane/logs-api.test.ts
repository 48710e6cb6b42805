import { describe, expect, it } from 'vitest';
import { mergeLogs } from './log-collector.js';
import { parseLogsQuery } from './logs-api.js';

describe('merging the workers\' answers', () => {
  it('orders by time, names the worker, and keeps the newest lines past the limit', () => {
    const a = { node: 'w1', lines: [{ ts: 1, sandboxId: 's1', stream: 'stdout' as const, line: 'a1', callId: 'c' }, { ts: 5, sandboxId: 's1', stream: 'stdout' as const, line: 'a5' }] };
    const b = { node: 'w2', lines: [{ ts: 3, sandboxId: 's2', stream: 'stderr' as const, line: 'b3' }] };
    expect(mergeLogs([a, b], 10)).toEqual({
      lines: [
        { ts: 1, callId: 'c', sandboxId: 's1', node: 'w1', stream: 'stdout', line: 'a1' },
        { ts: 3, callId: null, sandboxId: 's2', node: 'w2', stream: 'stderr', line: 'b3' },
        { ts: 5, callId: null, sandboxId: 's1', node: 'w1', stream: 'stdout', line: 'a5' },
      ],
      truncated: false,
    });
    const two = mergeLogs([a, b], 2);
    expect(two.lines.map((l) => l.line)).toEqual(['b3', 'a5']);
    expect(two.truncated).toBe(true);
    expect(mergeLogs([{ ...b, truncated: true }], 10).truncated).toBe(true);
  });
});

describe('the logs query string', () => {
  it('reads since (epoch ms or date-time), limit and callId', () => {
    expect(parseLogsQuery('')).toEqual({});
    expect(parseLogsQuery('since=1700000000000&limit=5&callId=call-1')).toEqual({ since: 1_700_000_000_000, limit: 5, callId: 'call-1' });
    expect(parseLogsQuery('since=2025-01-31T12:00:00Z').since).toBe(Date.UTC(2025, 0, 31, 12));
  });

  it('names what is wrong', () => {
    expect(() => parseLogsQuery('since=later')).toThrow(/since: "later"/);
    expect(() => parseLogsQuery('limit=0')).toThrow(/limit: expected an integer from 1 to 10000/);
    expect(() => parseLogsQuery('limit=10001')).toThrow(/limit/);
    expect(() => parseLogsQuery('limit=1&limit=2')).toThrow(/limit given more than once/);
    expect(() => parseLogsQuery('sinse=1')).toThrow(/unknown query parameter "sinse"/);
    expect(() => parseLogsQuery(`callId=${'x'.repeat(129)}`)).toThrow(/callId/);
  });
});
