import { describe, expect, it } from 'vitest';
import { KpaAutoscaler, type AutoscalerConfig } from './autoscaler.js';

const base: AutoscalerConfig = {
  min: 0,
  max: 100,
  targetConcurrency: 1,
  stableWindowMs: 10_000,
  panicWindowMs: 2_000,
  keepAliveMs: 5_000,
  panicThreshold: 2,
  maxScaleUpRate: 1000,
  maxScaleDownRate: 2,
};

function feed(a: KpaAutoscaler, from: number, to: number, level: number): void {
  for (let t = from; t <= to; t += 1000) a.record(t, level);
}

describe('KpaAutoscaler', () => {
  it('scales to the stable average divided by the target', () => {
    const a = new KpaAutoscaler({ ...base, targetConcurrency: 2 });
    feed(a, 1000, 10_000, 7);
    expect(a.decide(10_000, 4, 10_000).desired).toBe(4);
  });

  it('enters panic on a burst and does not scale down while panicking', () => {
    const a = new KpaAutoscaler(base);
    feed(a, 1000, 8000, 1);
    feed(a, 9000, 10_000, 10);
    const d = a.decide(10_000, 1, 10_000);
    expect(d.panic).toBe(true);
    expect(d.desired).toBe(10);
    // load vanishes: panic holds the scale for a stable window
    feed(a, 11_000, 12_000, 0);
    expect(a.decide(12_000, 10, 12_000).desired).toBe(10);
    feed(a, 13_000, 21_000, 0);
    const later = a.decide(21_000, 10, 12_000);
    expect(later.panic).toBe(false);
    expect(later.desired).toBe(5); // scale-down rate 2 halves at most
  });

  it('keeps the last sandbox for keepAlive, then scales to zero', () => {
    const a = new KpaAutoscaler(base);
    feed(a, 1000, 12_000, 0);
    expect(a.decide(12_000, 1, 9000).desired).toBe(1);
    expect(a.decide(14_001, 1, 9000).desired).toBe(0);
  });

  it('respects min and max', () => {
    const a = new KpaAutoscaler({ ...base, min: 2, max: 3 });
    expect(a.decide(1000, 0, 0).desired).toBe(2);
    feed(a, 1000, 10_000, 50);
    expect(a.decide(10_000, 2, 10_000).desired).toBe(3);
  });

  it('clamps scale-up rate relative to current scale', () => {
    const a = new KpaAutoscaler({ ...base, maxScaleUpRate: 2 });
    feed(a, 1000, 10_000, 40);
    expect(a.decide(10_000, 3, 10_000).desired).toBe(6);
  });
});
