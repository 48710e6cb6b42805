import { describe, expect, it } from 'vitest';
import { plotSeries } from './plot.js';

describe('plotSeries', () => {
  it('draws the phases back to back with a mark at each and a p99 step per phase', () => {
    const { series, marks } = plotSeries(
      [
        { label: 'alone', offsetS: 0, durationS: 10, p99: 8, bins: [{ x: 0.5, n: 40, p50: 6, max: 9 }] },
        { label: 'flood, classes', offsetS: 10, durationS: 10, p99: 9, bins: [{ x: 10.5, n: 40, p50: 6.5, max: 12 }] },
      ],
      1,
    );
    expect(marks).toEqual([
      { x: 0, label: 'alone' },
      { x: 10, label: 'flood, classes' },
    ]);
    expect(series.map((s) => s.points)).toEqual([
      [
        [0.5, 6],
        [10.5, 6.5],
      ],
      [
        [0.5, 9],
        [10.5, 12],
      ],
      [
        [0, 8],
        [10, 8],
        [10, 9],
        [20, 9],
      ],
    ]);
  });
});
