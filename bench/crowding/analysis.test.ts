import { describe, expect, it } from 'vitest';
import { completedIn, latencyBins, p99Ratios, partsOf, summarizeBatch, summarizeCritical, textTable, type CallRecord } from './analysis.js';

function call(sentAt: number, e2e: number, extra: Partial<CallRecord> = {}): CallRecord {
  return { sentAt, doneAt: sentAt + e2e, ok: true, status: 200, timing: {}, ...extra };
}

describe('phase windows', () => {
  const span = { start: 1000, end: 2000 };

  it('count only calls that completed inside their window', () => {
    const records = [call(990, 5), call(1000, 5), call(1500, 499), call(1990, 10), call(1995, 50)];
    const done = completedIn([{ span, records }]);
    // 990+5 is before the window; 1990+10 = 2000 is the end, which is outside [start, end)
    expect(done.map((r) => r.sentAt)).toEqual([1000, 1500]);
  });

  it('keep each window to its own calls when a phase has several', () => {
    const a = { span: { start: 0, end: 100 }, records: [call(10, 5), call(90, 20)] };
    const b = { span: { start: 200, end: 300 }, records: [call(210, 5)] };
    // a's late call completes at 110: inside neither window
    expect(completedIn([a, b]).map((r) => r.sentAt)).toEqual([10, 210]);
  });

  it('summarise critical calls: failures count at their time to failure, late ones are reported apart', () => {
    const records: CallRecord[] = [];
    for (let i = 0; i < 98; i++) records.push(call(1000 + i * 5, 10, { dueAt: 1000 + i * 5 - 1, spin: { cpuMs: 4, wallMs: 5 } }));
    records.push(call(1600, 300, { ok: false, status: 503, error: 'overloaded' }));
    records.push(call(1700, 50, { ok: false, status: 0, error: 'no response within 50 ms' }));
    records.push(call(1950, 100)); // answered after the window closed
    const s = summarizeCritical([{ span, records }]);
    expect(s.sent).toBe(101);
    expect(s.completed).toBe(100);
    expect(s.late).toBe(1);
    expect(s.errors).toBe(2);
    expect(s.errorKinds).toEqual({ '503 overloaded': 1, '0 no response within 50 ms': 1 });
    expect(s.e2eMs.p50).toBe(10);
    expect(s.e2eMs.p99).toBe(50);
    expect(s.e2eMs.max).toBe(300);
    expect(s.offCpuMs.p50).toBe(1);
    expect(s.sendLagMs.p50).toBe(1);
  });

  it('summarise batch calls per second of window, over all windows of the phase', () => {
    const w1 = { span: { start: 0, end: 1000 }, records: [call(0, 100, { spin: { cpuMs: 50, wallMs: 80 } }), call(100, 100, { ok: false, status: 502, error: 'sandbox_failed' })] };
    const w2 = { span: { start: 5000, end: 6000 }, records: [call(5000, 200, { spin: { cpuMs: 50, wallMs: 50 }, timing: { preempt: 12 } })] };
    const s = summarizeBatch([w1, w2]);
    expect(s).toMatchObject({ completed: 3, ok: 2, errors: 1, throughputPerSec: 1, offCpuMsTotal: 30, cpuMsTotal: 100, preemptedCalls: 1, preemptMsTotal: 12 });
  });
});

describe('where the time went', () => {
  it('splits a call by its Server-Timing and the handler report', () => {
    const r = call(0, 20, { timing: { queue: 1, sched: 0.5, cold: 0, exec: 6, total: 15 }, spin: { cpuMs: 4, wallMs: 5.5 } });
    expect(partsOf(r)).toEqual({ outside: 5, controlPlane: 1.5, transit: 7.5, exec: 6, offCpu: 1.5 });
    expect(partsOf(call(0, 20))).toBeUndefined();
  });
});

describe('plot bins', () => {
  it('bin calls by send time, leaving out those answered after the window', () => {
    const w = { span: { start: 0, end: 3000 }, records: [call(100, 5), call(900, 7), call(1100, 30), call(2999, 50)] };
    expect(latencyBins(w, 1000, 20)).toEqual([
      { x: 20.5, n: 2, p50: 5, max: 7 },
      { x: 21.5, n: 1, p50: 30, max: 30 },
    ]);
    expect(() => latencyBins(w, 0, 0)).toThrow(RangeError);
  });
});

describe('ratios', () => {
  it('compare each flood with the alone phase of the same setting, else the first alone phase', () => {
    const phases = [
      { name: 'alone', flood: false, classes: true, p99: 10 },
      { name: 'flood', flood: true, classes: true, p99: 11 },
      { name: 'flood-no-classes', flood: true, classes: false, p99: 50 },
    ];
    expect(p99Ratios(phases)).toEqual([
      { phase: 'flood', baseline: 'alone', ratio: 1.1 },
      { phase: 'flood-no-classes', baseline: 'alone', ratio: 5 },
    ]);
    expect(p99Ratios([...phases, { name: 'alone-no-classes', flood: false, classes: false, p99: 25 }])[1]).toEqual({ phase: 'flood-no-classes', baseline: 'alone-no-classes', ratio: 2 });
  });
});

describe('textTable', () => {
  it('pads the first column left and the others right', () => {
    expect(textTable(['phase', 'n'], [['alone', 5], ['flood', 10]])).toBe(['| phase |  n |', '|-------|---:|', '| alone |  5 |', '| flood | 10 |'].join('\n'));
  });
});
