import { describe, expect, it } from 'vitest';
import { percentile, summary } from './stats.js';

describe('percentile', () => {
  it('uses the nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(v, 99)).toBe(99);
    expect(percentile(v, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });
  it('summarises', () => {
    expect(summary([1, 2, 3, 4])).toEqual({ p50: 2, p99: 4, max: 4 });
  });
});
