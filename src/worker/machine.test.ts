import { describe, expect, it } from 'vitest';
import { NO_CONTROL, type Sandbox } from '../sandbox/runtime.js';
import { MachineController, type MachineCall } from './machine.js';

/** A sandbox that only records what the machine did to it. */
function sandbox(id: string): Sandbox & { frozen: boolean } {
  const sb = {
    id,
    spec: { functionKey: `default/${id}`, version: 1, incarnation: 'i', runtime: 'node' as const, env: {}, concurrency: 4, timeoutMs: 1000, bundleHash: '', priceClass: 'standard' },
    pid: undefined,
    control: NO_CONTROL,
    frozen: false,
    invoke: () => Promise.reject(new Error('not used')),
    freeze: () => void (sb.frozen = true),
    thaw: () => void (sb.frozen = false),
    stop: () => Promise.resolve(),
    onExit: () => undefined,
  };
  return sb;
}

function call(rank: number, log: string[], name: string): MachineCall {
  return { rank, arrivedAt: 0, sentAt: -1, preemptedMs: 0, pausedAt: -1, send: () => void log.push(`send ${name}`) };
}

describe('MachineController and call chains', () => {
  const machine = (cores: number): MachineController => new MachineController(cores, 4, [], () => 0);

  it('on one core, a parent waiting for its child gives the core to the child and takes it back for the answer', () => {
    const m = machine(1);
    const log: string[] = [];
    const a = sandbox('parent');
    const b = sandbox('child');
    const p = call(2, log, 'P');
    m.arrive(a, p);
    expect(m.isRunning(a)).toBe(true);
    m.block(a, p);
    expect(m.isRunning(a)).toBe(false);
    expect(m.running).toBe(0);
    const c = call(2, log, 'C');
    m.arrive(b, c);
    // the child runs on the core its parent gave up instead of waiting behind it
    expect(log).toEqual(['send P', 'send C']);
    expect(m.isRunning(b)).toBe(true);
    m.done(b, c);
    m.unblock(a, p, () => log.push('answer P'));
    expect(log.at(-1)).toBe('answer P');
    expect(m.isRunning(a)).toBe(true);
    expect(m.busyByRank()).toEqual([0, 0, 1, 0]);
  });

  it('an answer that comes while the core is busy waits for it, ahead of later work of its class', () => {
    const m = machine(1);
    const log: string[] = [];
    const a = sandbox('parent');
    const b = sandbox('child');
    const e = sandbox('later');
    const p = call(1, log, 'P');
    m.arrive(a, p);
    m.block(a, p);
    const c = call(1, log, 'C');
    m.arrive(b, c);
    m.unblock(a, p, () => log.push('answer P'));
    expect(log).not.toContain('answer P');
    expect(m.waiting).toBe(1);
    m.arrive(e, call(1, log, 'E'));
    m.done(b, c);
    expect(log.slice(-1)).toEqual(['answer P']);
    expect(m.isRunning(a)).toBe(true);
    expect(m.isRunning(e)).toBe(false);
  });

  it('a sandbox with several calls leaves its core only when all of them wait; a new call brings it back', () => {
    const m = machine(1);
    const log: string[] = [];
    const a = sandbox('multi');
    const p1 = call(1, log, 'P1');
    const p2 = call(1, log, 'P2');
    m.arrive(a, p1);
    m.arrive(a, p2);
    m.block(a, p1);
    expect(m.isRunning(a)).toBe(true);
    m.block(a, p2);
    expect(m.isRunning(a)).toBe(false);
    // a call for the same sandbox (its own child, say) arrives: it needs the core again
    const p3 = call(1, log, 'P3');
    m.arrive(a, p3);
    expect(m.isRunning(a)).toBe(true);
    expect(log).toEqual(['send P1', 'send P2', 'send P3']);
    // the only running call ends while the others still wait: the core goes
    m.done(a, p3);
    expect(m.isRunning(a)).toBe(false);
    expect(m.running).toBe(0);
    m.unblock(a, p1, () => log.push('answer P1'));
    expect(m.isRunning(a)).toBe(true);
    expect(log.at(-1)).toBe('answer P1');
  });

  it('a call with two chain calls out waits until both have answered', () => {
    const m = machine(1);
    const log: string[] = [];
    const a = sandbox('fan');
    const p = call(1, log, 'P');
    m.arrive(a, p);
    m.block(a, p);
    m.block(a, p);
    m.unblock(a, p, () => log.push('first'));
    expect(log.at(-1)).toBe('first');
    expect(m.isRunning(a)).toBe(false);
    m.unblock(a, p, () => log.push('second'));
    expect(log.at(-1)).toBe('second');
    expect(m.isRunning(a)).toBe(true);
  });

  it('a preempted sandbox whose call then waits for a child is thawed and leaves the queue', () => {
    const m = machine(1);
    const log: string[] = [];
    const low = sandbox('low');
    const high = sandbox('high');
    const p = call(0, log, 'P');
    m.arrive(low, p);
    m.arrive(high, call(3, log, 'H'));
    expect(low.frozen).toBe(true);
    expect(m.waiting).toBe(1);
    // its chain call was on its way when it was frozen
    m.block(low, p);
    expect(low.frozen).toBe(false);
    expect(m.waiting).toBe(0);
    expect(m.isRunning(high)).toBe(true);
  });

  it('a waiting call that ends (timeout, crash) leaves nothing behind', () => {
    const m = machine(1);
    const log: string[] = [];
    const a = sandbox('gone');
    const p = call(1, log, 'P');
    m.arrive(a, p);
    m.block(a, p);
    m.done(a, p);
    let answered = false;
    m.unblock(a, p, () => (answered = true));
    expect(answered).toBe(true);
    expect(m.running + m.waiting).toBe(0);
    const b = sandbox('next');
    m.arrive(b, call(1, log, 'N'));
    expect(m.isRunning(b)).toBe(true);
  });
});
