import { describe, expect, it } from 'vitest';
import { planFunctions } from './functions.js';

describe('planFunctions', () => {
  it('gives every outstanding batch call its own sandbox, spread over the batch functions', () => {
    const p = planFunctions({ criticalMs: 4, batchMs: [50, 100, 200], batchInflight: 8, workers: 1 });
    expect(p.batch.map((f) => [f.spinMs, f.sandboxes])).toEqual([
      [50, 3],
      [100, 3],
      [200, 2],
    ]);
    expect(p.batch.every((f) => f.priceClass === 'batch')).toBe(true);
    expect(p.critical).toMatchObject({ priceClass: 'critical', spinMs: 4, sandboxes: 8 });
  });
});
