import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastCounter, FastHistogram } from './fast-metrics.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('fast metrics', () => {
  it('scrape exactly like prom-client for the same observations', async () => {
    const fast = new Registry();
    const reference = new Registry();
    const fh = new FastHistogram('t_latency_seconds', 'latency', ['class'], BUCKETS, [fast]);
    const rh = new Histogram({ name: 't_latency_seconds', help: 'latency', labelNames: ['class'], buckets: BUCKETS, registers: [reference] });
    const fc = new FastCounter('t_calls_total', 'calls', ['status', 'class'], [fast]);
    const rc = new Counter({ name: 't_calls_total', help: 'calls', labelNames: ['status', 'class'], registers: [reference] });
    const fu = new FastCounter('t_plain_total', 'plain', [], [fast]);
    const ru = new Counter({ name: 't_plain_total', help: 'plain', registers: [reference] });
    const observations: [string, number][] = [['critical', 0.0004], ['critical', 0.001], ['batch', 0.05], ['batch', 3], ['critical', 0.2], ['batch', 0.01]];
    for (const [cls, v] of observations) {
      fh.bind(cls).observe(v);
      rh.observe({ class: cls }, v);
      fc.bind('200', cls).inc();
      rc.inc({ status: '200', class: cls });
    }
    fc.bind('503', 'batch').inc(2);
    rc.inc({ status: '503', class: 'batch' }, 2);
    fu.inc(0.5);
    ru.inc(0.5);
    expect(await fast.metrics()).toBe(await reference.metrics());
  });

  it('a bound series is the same object every time, and label mistakes are named', () => {
    const r = new Registry();
    const c = new FastCounter('t_total', 'x', ['a'], [r]);
    expect(c.bind('1')).toBe(c.bind('1'));
    expect(() => c.bind('1', '2')).toThrow(/t_total: expected 1 label values, got 2/);
    expect(() => c.inc()).toThrow(/t_total has labels/);
    expect(() => new FastHistogram('t_h', 'x', [], [1, 0.5], [r])).toThrow(/buckets must increase/);
  });
});
