import { describe, expect, it } from 'vitest';
import { budgetStatus, monthOf, retryAfterSeconds } from './budget.js';

describe('budgets', () => {
  const june = (day: number, hour = 0): number => Date.UTC(2026, 5, day, hour);

  it('finds the calendar month (UTC)', () => {
    expect(monthOf(june(15))).toEqual({ start: Date.UTC(2026, 5, 1), end: Date.UTC(2026, 6, 1) });
    expect(monthOf(Date.UTC(2026, 11, 31, 23)).end).toBe(Date.UTC(2027, 0, 1));
  });

  it('paces the budget over the month and throttles the lowest classes first as spending runs ahead', () => {
    // half-way through June (30 days): the pace of a 300 budget is 150
    const mid = june(16);
    expect(budgetStatus(300, 150, mid, 4).servedFromRank).toBe(0);
    expect(budgetStatus(300, 160, mid, 4).servedFromRank).toBe(0); // small overshoot is tolerated
    expect(budgetStatus(300, 170, mid, 4).servedFromRank).toBe(1); // > +10 %: batch throttled
    expect(budgetStatus(300, 210, mid, 4).servedFromRank).toBe(2); // > +35 %: standard too
    expect(budgetStatus(300, 400, mid, 4).servedFromRank).toBe(4); // far over: everything
    const s = budgetStatus(300, 170, mid, 4);
    expect(s.pace).toBeCloseTo(150, 5);
    expect(s.ratio).toBeCloseTo(170 / 150, 5);
  });

  it('does not throttle the first calls of a month (pace floor)', () => {
    expect(budgetStatus(300, 1, june(1, 0), 4).servedFromRank).toBe(0);
  });

  it('says when a throttled class comes back', () => {
    const s = budgetStatus(300, 170, june(16), 4);
    // batch needs the pace to reach 170 / 1.1 ≈ 154.5: 4.5 of budget at 10/day ≈ 0.45 days
    const secs = retryAfterSeconds(s, 0);
    expect(secs).toBeGreaterThan(0.4 * 86_400);
    expect(secs).toBeLessThan(0.5 * 86_400);
  });
});
