import { describe, expect, it } from 'vitest';
import type { LogLine } from '../protocol/messages.js';
import { LogRing } from './log-ring.js';
import { LogStore } from './log-store.js';

const line = (n: number, callId?: string): LogLine => ({ ts: n, sandboxId: 'sb', stream: 'stdout', line: `l${n}`, ...(callId === undefined ? {} : { callId }) });

describe('LogRing', () => {
  it('keeps the newest lines within its line bound', () => {
    const r = new LogRing(3, 1e9);
    for (let i = 1; i <= 5; i++) r.push(line(i), 10);
    expect(r.query({ limit: 10 }).lines.map((l) => l.line)).toEqual(['l3', 'l4', 'l5']);
    expect(r.size).toBe(3);
    expect(r.bytes).toBe(30);
  });

  it('keeps the newest lines within its byte bound, and takes a line bigger than the bound alone', () => {
    const r = new LogRing(100, 25);
    for (let i = 1; i <= 4; i++) expect(r.push(line(i), 10)).toBe(i <= 2 ? 0 : 10);
    expect(r.query({ limit: 10 }).lines.map((l) => l.line)).toEqual(['l3', 'l4']);
    r.push(line(5), 40);
    expect(r.query({ limit: 10 }).lines.map((l) => l.line)).toEqual(['l5']);
    expect(r.bytes).toBe(40);
  });

  it('filters by call and time, and a limit keeps the newest and says so', () => {
    const r = new LogRing(100, 1e9);
    for (let i = 1; i <= 10; i++) r.push(line(i, i % 2 === 0 ? 'even' : undefined), 1);
    expect(r.query({ callId: 'even', limit: 100 }).lines.map((l) => l.ts)).toEqual([2, 4, 6, 8, 10]);
    expect(r.query({ since: 8, limit: 100 }).lines.map((l) => l.ts)).toEqual([8, 9, 10]);
    expect(r.query({ limit: 2 })).toEqual({ lines: [line(9), line(10, 'even')], truncated: true });
    expect(r.query({ since: 9, limit: 2 }).truncated).toBe(false);
  });

  it('wraps around many times without losing order', () => {
    const r = new LogRing(7, 1e9);
    for (let i = 1; i <= 100; i++) r.push(line(i), 1);
    expect(r.query({ limit: 100 }).lines.map((l) => l.ts)).toEqual([94, 95, 96, 97, 98, 99, 100]);
  });
});

describe('LogStore', () => {
  it('keeps a function\'s lines for the retention after its last sandbox closed, then forgets them', () => {
    let now = 0;
    const s = new LogStore(() => now, { retentionMs: 1000 });
    const a = s.open('sb-a', 'ns/f');
    const b = s.open('sb-b', 'ns/f');
    a.write('stdout', 'from a', 'c1');
    b.write('stderr', 'from b');
    a.close();
    now = 5000;
    // b still lives: nothing goes
    s.sweep(true);
    expect(s.query({ functionKey: 'ns/f', limit: 10 }).lines.map((l) => [l.sandboxId, l.line, l.callId])).toEqual([
      ['sb-a', 'from a', 'c1'],
      ['sb-b', 'from b', undefined],
    ]);
    b.close();
    now = 5900;
    s.sweep(true);
    expect(s.query({ functionKey: 'ns/f', callId: 'c1', limit: 10 }).lines).toHaveLength(1);
    now = 6100;
    s.sweep(true);
    expect(s.query({ functionKey: 'ns/f', limit: 10 }).lines).toEqual([]);
    expect(s.functions).toBe(0);
    expect(s.bytes).toBe(0);
  });

  it('keeps functions apart', () => {
    const s = new LogStore(() => 0);
    s.open('sb1', 'ns1/f').write('stdout', 'one');
    s.open('sb2', 'ns2/f').write('stdout', 'two');
    expect(s.query({ functionKey: 'ns1/f', limit: 10 }).lines.map((l) => l.line)).toEqual(['one']);
    expect(s.query({ functionKey: 'ns3/f', limit: 10 })).toEqual({ lines: [], truncated: false });
  });

  it('stays within its total bound: logs of gone sandboxes go first, then the oldest lines of the biggest', () => {
    const s = new LogStore(() => 0, { bytesTotal: 2000, bytesPerFunction: 1500 });
    const gone = s.open('g', 'ns/gone');
    gone.write('stdout', 'x'.repeat(500));
    gone.close();
    const live = s.open('l', 'ns/live');
    for (let i = 0; i < 20; i++) live.write('stdout', `${i}`.padEnd(100, '.'));
    expect(s.bytes).toBeLessThanOrEqual(2000);
    expect(s.query({ functionKey: 'ns/gone', limit: 10 }).lines).toEqual([]);
    const other = s.open('o', 'ns/other');
    for (let i = 0; i < 20; i++) other.write('stdout', `${i}`.padEnd(100, '.'));
    expect(s.bytes).toBeLessThanOrEqual(2000);
    // both live logs keep their newest lines
    expect(s.query({ functionKey: 'ns/live', limit: 100 }).lines.at(-1)?.line.startsWith('19.')).toBe(true);
    expect(s.query({ functionKey: 'ns/other', limit: 100 }).lines.at(-1)?.line.startsWith('19.')).toBe(true);
  });
});
