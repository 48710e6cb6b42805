import { describe, expect, it } from 'vitest';
import { LOG_BATCH_MAX_LINES, RunnerLogCapture, type LogBatch } from './runner-logs.js';

function capture(): { c: RunnerLogCapture; batches: LogBatch[] } {
  const batches: LogBatch[] = [];
  const c = new RunnerLogCapture((b, done) => {
    batches.push(b);
    done();
  }, () => 1000);
  return { c, batches };
}

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('RunnerLogCapture', () => {
  it('tags lines with the call they were written from, across awaits of overlapping calls', async () => {
    const { c, batches } = capture();
    const call = (id: string) =>
      c.run(id, async () => {
        c.write('stdout', `start ${id}\n`);
        await tick(5);
        c.write('stdout', `half ${id} `);
        await tick(5);
        c.write('stderr', `err ${id}\n`);
        c.write('stdout', 'done\n');
        c.end(id);
      });
    await Promise.all([call('a'), call('b')]);
    const lines = batches.flatMap((b) => b.lines);
    for (const id of ['a', 'b']) {
      expect(lines.filter((l) => l.callId === id).map((l) => `${l.stream} ${l.line}`)).toEqual([`stdout start ${id}`, `stderr err ${id}`, `stdout half ${id} done`]);
    }
  });

  it('sends a call\'s lines, its unfinished line too, when the call ends', () => {
    const { c, batches } = capture();
    c.run('x', () => c.write('stdout', 'no newline'));
    expect(batches).toHaveLength(0);
    c.end('x');
    expect(batches.flatMap((b) => b.lines)).toEqual([{ ts: 1000, stream: 'stdout', line: 'no newline', callId: 'x' }]);
  });

  it('writes outside any call, or after the call ended, carry no call id', async () => {
    const { c, batches } = capture();
    c.write('stdout', 'at load\n');
    let later: Promise<void> | undefined;
    c.run('y', () => {
      later = tick(5).then(() => c.write('stdout', 'timer after the call\n'));
    });
    c.end('y');
    await later;
    c.flush();
    expect(batches.flatMap((b) => b.lines).map((l) => [l.line, l.callId])).toEqual([
      ['at load', undefined],
      ['timer after the call', undefined],
    ]);
  });

  it('puts an error\'s stack in its call\'s log', () => {
    const { c, batches } = capture();
    c.error('z', new Error('boom'));
    c.flush();
    const lines = batches.flatMap((b) => b.lines);
    expect(lines[0]).toEqual({ ts: 1000, stream: 'stderr', line: 'Error: boom', callId: 'z' });
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.every((l) => l.callId === 'z')).toBe(true);
  });

  it('batches many lines into few messages', async () => {
    const { c, batches } = capture();
    for (let i = 0; i < 1000; i++) c.write('stdout', `line ${i}\n`);
    await tick(50);
    expect(batches.flatMap((b) => b.lines)).toHaveLength(1000);
    expect(batches.length).toBeLessThanOrEqual(Math.ceil(1000 / LOG_BATCH_MAX_LINES) + 1);
  });

  it('drops and counts lines while too much is unsent', () => {
    const held: (() => void)[] = [];
    const batches: LogBatch[] = [];
    const c = new RunnerLogCapture((b, done) => {
      batches.push(b);
      held.push(done);
    });
    const big = 'x'.repeat(8000);
    for (let i = 0; i < 1000; i++) c.write('stdout', `${big}\n`);
    c.flush();
    const kept = batches.flatMap((b) => b.lines).length;
    expect(kept).toBeLessThan(1000);
    // every line is either sent or counted
    expect(batches.reduce((n, b) => n + (b.dropped ?? 0), 0)).toBe(1000 - kept);
    // once the channel has drained, lines are taken again
    for (const d of held.splice(0)) d();
    c.write('stdout', 'after\n');
    c.flush();
    expect(batches.at(-1)?.lines.map((l) => l.line)).toEqual(['after']);
  });
});
