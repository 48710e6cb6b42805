import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRng } from '../src/policies/rng.js';
import { Engine } from '../src/sim/engine.js';
import { e1 } from '../src/sim/experiments.js';
import { DEFAULT_CLUSTER, defaultClasses, simulate, type ClusterConfig, type SchedulerName } from '../src/sim/simulate.js';
import { readTrace } from '../src/sim/trace.js';
import { defaultSynthetic, synthetic, type SyntheticConfig } from '../src/sim/workload.js';
import { FIXTURES } from './helpers/cluster.js';

const classes = defaultClasses();
const quiet = (): void => undefined;

function small(scheduler: SchedulerName, over: Partial<ClusterConfig> = {}, w: Partial<SyntheticConfig> = {}, seed = 3, check = true) {
  const cluster: ClusterConfig = { ...DEFAULT_CLUSTER, machines: 10, cores: 4, ...over };
  const work: SyntheticConfig = { ...defaultSynthetic(cluster.machines * cluster.cores), durationTicks: 6, ...w };
  return simulate({ scheduler, cluster, classes, tickMs: work.tickMs, durationTicks: work.durationTicks, seed, check, workload: () => synthetic(work, classes, createRng(seed)) });
}

describe('engine', () => {
  it('runs events in time order, equal times in scheduling order, and refuses the past', () => {
    const e = new Engine();
    const seen: string[] = [];
    e.at(5, () => seen.push('b'));
    e.at(1, () => {
      seen.push('a');
      e.at(5, () => seen.push('c'));
    });
    e.at(5, () => seen.push('b2'));
    e.run();
    expect(seen).toEqual(['a', 'b', 'b2', 'c']);
    expect(() => e.at(1, () => undefined)).toThrow(/past/);
  });
});

describe('simulator invariants', () => {
  for (const s of ['xx', 'hermod', 'edf'] as const) {
    it(`${s}: every arrival completes, is killed or is still outstanding; no invariant breaks under overload`, () => {
      const r = small(s, {}, { phases: [{ atTick: 0, load: 0.7 }, { atTick: 2, load: 1.4 }, { atTick: 4, load: 0.5 }] });
      expect(r.arrivals).toBeGreaterThan(1000);
      expect(r.completed + r.killed + r.unfinished).toBe(r.arrivals);
    });
  }

  it('xx with 32 GB machines and little swap swaps low classes first and kills only when swap is full', () => {
    const r = small('xx', { ramMb: 16 * 1024, swapMb: 2 * 1024, idleList: true }, { phases: [{ atTick: 0, load: 0.9 }] });
    expect(r.completed + r.killed + r.unfinished).toBe(r.arrivals);
    const m = r.metrics;
    expect(m.swapOutsByClass[0]).toBeGreaterThan(m.swapOutsByClass[3] ?? 0);
    expect(r.killed).toBeGreaterThan(0);
    expect(m.killedByClass[0]).toBeGreaterThanOrEqual(m.killedByClass[3] ?? 0);
    const roomy = small('xx', { ramMb: 32 * 1024, swapMb: 10_000 * 1024, idleList: true }, { phases: [{ atTick: 0, load: 0.9 }] });
    expect(roomy.killed).toBe(0);
  });

  it('the same seed gives byte-identical results; another seed does not', () => {
    const a = JSON.stringify(e1(5, true, quiet).json);
    const b = JSON.stringify(e1(5, true, quiet).json);
    const c = JSON.stringify(e1(6, true, quiet).json);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  }, 60_000);
});

describe('E1 at small scale shows the papers\' claim', () => {
  it('XX keeps critical p99 slowdown flat through a spike; Hermod degrades every class', () => {
    const out = e1(1, true, quiet).json as { schedulers: Record<string, { classes: Record<string, { p99Before: number; p99Spike: number }> }> };
    const xx = out.schedulers['xx']?.classes['critical'];
    const hermod = out.schedulers['hermod']?.classes;
    expect(xx).toBeDefined();
    expect((xx?.p99Spike ?? Infinity) / (xx?.p99Before ?? 1)).toBeLessThanOrEqual(1.2);
    for (const c of ['batch', 'standard', 'interactive', 'critical']) {
      const h = hermod?.[c];
      expect((h?.p99Spike ?? 0) / (h?.p99Before ?? 1)).toBeGreaterThan(2);
    }
    expect(out.schedulers['xx']?.classes['batch']?.p99Spike).toBeGreaterThan(out.schedulers['xx']?.classes['critical']?.p99Spike ?? 0);
  }, 60_000);
});

describe('trace workloads', () => {
  const draws = { rank: () => 1, memMb: () => 256 };
  it('reads the Azure Functions CSV sample', () => {
    const file = join(FIXTURES, 'traces/azure2021-30.csv');
    const rows = readFileSync(file, 'utf8').trim().split('\n').length - 1;
    const inv = readTrace(file, draws, createRng(1));
    expect(inv.length).toBe(rows);
    expect(inv.every((v, i) => i === 0 || v.arrival >= (inv[i - 1]?.arrival ?? 0))).toBe(true);
    expect(inv[0]?.runtime).toBeGreaterThan(0);
  });
  it('reads the InVitro sample and replays it', () => {
    const inv = readTrace(join(FIXTURES, 'traces/invitro-example'), draws, createRng(1));
    expect(inv.length).toBeGreaterThan(100);
    const r = simulate({ scheduler: 'xx', cluster: { ...DEFAULT_CLUSTER, machines: 4 }, classes, tickMs: 1000, durationTicks: Math.ceil((inv.at(-1)?.arrival ?? 0) / 1000) + 1, seed: 1, check: true, workload: () => inv[Symbol.iterator]() });
    expect(r.arrivals).toBe(inv.length);
    expect(r.completed).toBe(inv.length);
  });
});
