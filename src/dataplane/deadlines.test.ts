import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from './deadlines.js';

describe('Deadlines', () => {
  // the fake timers drive Date.now as well
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());
  const clock = (): number => Date.now();

  it('fires each deadline once, in time order across durations, and never a cancelled one', () => {
    const dl = new Deadlines(clock);
    const fired: string[] = [];
    const a = dl.add(100, () => fired.push('a100'));
    dl.add(50, () => fired.push('b50'));
    vi.advanceTimersByTime(10);
    dl.add(100, () => fired.push('c110'));
    const d = dl.add(30, () => fired.push('d40'));
    expect(dl.size).toBe(4);
    dl.cancel(d);
    dl.cancel(d); // twice is harmless
    expect(dl.size).toBe(3);
    vi.advanceTimersByTime(50);
    expect(fired).toEqual(['b50']);
    dl.cancel(a);
    vi.advanceTimersByTime(200);
    expect(fired).toEqual(['b50', 'c110']);
    expect(dl.size).toBe(0);
  });

  it('a deadline added from inside a firing one is kept', () => {
    const dl = new Deadlines(clock);
    const fired: number[] = [];
    dl.add(10, () => {
      fired.push(1);
      dl.add(10, () => fired.push(2));
    });
    vi.advanceTimersByTime(10);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual([1, 2]);
  });
});
