import { performance } from 'node:perf_hooks';
import { ClassQueue } from '../policies/class-queue.js';
import { CorePool } from '../policies/core-pool.js';
import { IdleLists } from '../policies/idle-list.js';
import { PlacementPipeline, capacityFit, freeCores, leastLoaded, type NodeView } from '../policies/placement-pipeline.js';
import { powerOfK } from '../policies/power-of-k.js';
import { createRng } from '../policies/rng.js';
import { round } from './metrics.js';
import { DEFAULT_CLUSTER, defaultClasses, simulate, type ClusterConfig, type RunResult, type SchedulerName } from './simulate.js';
import { lineChart } from './svg-plot.js';
import { defaultSynthetic, synthetic, type SyntheticConfig } from './workload.js';

export interface ExperimentOutput {
  json: Record<string, unknown>;
  plots: Record<string, string>;
  summary: string;
}

const classes = defaultClasses();
const NAMES = classes.names();

function run(scheduler: SchedulerName, cluster: ClusterConfig, w: SyntheticConfig, seed: number, progress: (s: string) => void): RunResult {
  const t0 = performance.now();
  const r = simulate({ scheduler, cluster, classes, tickMs: w.tickMs, durationTicks: w.durationTicks, seed, workload: () => synthetic(w, classes, createRng(seed)) });
  progress(`${scheduler}: ${r.arrivals} invocations, ${r.events} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return r;
}

function perClassOverTime(r: RunResult, window: number): Record<string, [number, number][]> {
  const out: Record<string, [number, number][]> = {};
  for (const [rank, name] of NAMES.entries()) {
    const pts: [number, number][] = [];
    for (let t = 0; t + window <= r.metrics.ticks; t += window) pts.push([t, r.metrics.slowdown(rank, t, t + window).p99]);
    out[name] = pts;
  }
  return out;
}

/** E1: load spike (seed 001 Fig. 3). */
export function e1(seed: number, quick: boolean, progress: (s: string) => void): ExperimentOutput {
  const cluster = { ...DEFAULT_CLUSTER, idleList: false };
  const w: SyntheticConfig = { ...defaultSynthetic(cluster.machines * cluster.cores), durationTicks: quick ? 40 : 110, phases: quick ? [{ atTick: 0, load: 0.6 }, { atTick: 15, load: 1.2 }, { atTick: 25, load: 0.6 }] : [{ atTick: 0, load: 0.6 }, { atTick: 50, load: 1.2 }, { atTick: 80, load: 0.6 }] };
  const [spikeAt, spikeEnd] = quick ? [15, 25] : [50, 80];
  const before: [number, number] = [Math.floor(spikeAt / 2), spikeAt];
  const schedulers: Record<string, unknown> = {};
  const plots: Record<string, string> = {};
  const rows: string[] = [];
  for (const s of ['xx', 'hermod'] as const) {
    const r = run(s, cluster, w, seed, progress);
    const cls: Record<string, unknown> = {};
    for (const [rank, name] of NAMES.entries()) {
      const b = r.metrics.slowdown(rank, before[0], before[1]).p99;
      const sp = r.metrics.slowdown(rank, spikeAt, spikeEnd).p99;
      cls[name] = { p99Before: b, p99Spike: sp, ratio: round(sp / b, 2), overall: r.metrics.slowdown(rank) };
      rows.push(`| ${s} | ${name} | ${b} | ${sp} | ${round(sp / b, 2)} |`);
    }
    const series = perClassOverTime(r, quick ? 1 : 2);
    schedulers[s] = { classes: cls, arrivals: r.arrivals, completed: r.completed, unfinished: r.unfinished, events: r.events, p99SlowdownOverTime: series };
    plots[`e1-${s}.svg`] = lineChart({
      title: `E1 load spike: ${s === 'xx' ? 'XX (idle list off)' : 'Hermod'}, p99 slowdown by class`,
      xLabel: 'tick (arrival time, s)',
      yLabel: 'p99 slowdown',
      logY: true,
      series: Object.entries(series).map(([name, points]) => ({ name, points })),
      marks: [{ x: spikeAt, label: 'load ×2' }, { x: spikeEnd, label: 'back' }],
    });
  }
  const summary = [
    '| scheduler | class | p99 slowdown before | p99 slowdown during spike | ratio |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  return { json: { experiment: 'e1', seed, quick, workload: w, cluster, windows: { before, spike: [spikeAt, spikeEnd] }, schedulers }, plots, summary };
}

/** E2: load sweep (seed 000 Fig. 4). */
export function e2(seed: number, quick: boolean, progress: (s: string) => void): ExperimentOutput {
  const cluster = { ...DEFAULT_CLUSTER, idleList: false };
  const loads = quick ? [0.5, 0.9] : [0.5, 0.7, 0.8, 0.9, 1.0, 1.1];
  const results: Record<string, unknown[]> = { xx: [], hermod: [], edf: [] };
  const plots: Record<string, string> = {};
  const rows: string[] = [];
  const series: Record<string, [number, number][]> = {};
  for (const load of loads) {
    const w: SyntheticConfig = { ...defaultSynthetic(cluster.machines * cluster.cores), durationTicks: quick ? 10 : 30, phases: [{ atTick: 0, load }] };
    for (const s of ['hermod', 'xx', 'edf'] as const) {
      const r = run(s, cluster, w, seed, progress);
      const skip = Math.floor(w.durationTicks / 3);
      const per: Record<string, unknown> = {};
      for (const [rank, name] of NAMES.entries()) {
        const sd = r.metrics.slowdown(rank, skip, w.durationTicks);
        per[name] = { slowdown: sd, latencyMs: r.metrics.latency(rank), deadlineMet: r.metrics.deadlineMet(rank) };
        (series[`${s} ${name}`] ??= []).push([load, sd.p99]);
      }
      const util = r.metrics.utilisationSpread().slice(skip);
      const avg = (k: 'p10' | 'p50' | 'p90'): number => round(util.reduce((a, u) => a + u[k], 0) / Math.max(1, util.length), 3);
      const utilisation = { p10: avg('p10'), p50: avg('p50'), p90: avg('p90') };
      results[s]?.push({ load, classes: per, utilisation, unfinished: r.unfinished, completed: r.completed });
      rows.push(`| ${load} | ${s} | ${NAMES.map((n) => (per[n] as { slowdown: { p99: number } }).slowdown.p99).join(' | ')} | ${NAMES.map((n) => `${round(100 * (per[n] as { deadlineMet: number }).deadlineMet, 1)}%`).join(' / ')} | ${utilisation.p10}–${utilisation.p90} |`);
    }
  }
  for (const cls of [NAMES[NAMES.length - 1] as string, NAMES[0] as string]) {
    plots[`e2-${cls}.svg`] = lineChart({
      title: `E2 load sweep: p99 slowdown of ${cls}`,
      xLabel: 'offered load (fraction of cores)',
      yLabel: 'p99 slowdown',
      logY: true,
      series: ['hermod', 'xx', 'edf'].map((s) => ({ name: s, points: series[`${s} ${cls}`] ?? [] })),
    });
  }
  const summary = [`| load | scheduler | ${NAMES.map((n) => `p99 slowdown ${n}`).join(' | ')} | deadline met (${NAMES.join(' / ')}) | core utilisation p10–p90 across machines |`, `|---|---|${NAMES.map(() => '---|').join('')}---|---|`, ...rows].join('\n');
  return { json: { experiment: 'e2', seed, quick, loads, cluster, results }, plots, summary };
}

/** E3: memory (seeds 000/001 Figs. 4/5). */
export function e3(seed: number, quick: boolean, progress: (s: string) => void, swapMb = 500 * 1024): ExperimentOutput {
  const cluster: ClusterConfig = { ...DEFAULT_CLUSTER, idleList: true, ramMb: 32 * 1024, swapMb };
  const w: SyntheticConfig = { ...defaultSynthetic(cluster.machines * cluster.cores), durationTicks: quick ? 10 : 40, phases: [{ atTick: 0, load: 0.8 }] };
  const r = run('xx', cluster, w, seed, progress);
  const mem = r.metrics.memorySpread();
  const peak = Array.from(r.metrics.peakSwapByMachine);
  const sortedPeak = [...peak].sort((a, b) => a - b);
  const swapNeededMb = round(Math.max(0, ...peak), 0);
  const swappers = peak.filter((p) => p > 0).length;
  const byClass = Object.fromEntries(
    NAMES.map((n, i) => [n, { swapOuts: r.metrics.swapOutsByClass[i], ofWhichRunning: r.metrics.runningSwapOutsByClass[i], swappedMb: round(r.metrics.swappedMbByClass[i] ?? 0, 0), killed: r.metrics.killedByClass[i] }]),
  );
  const plots: Record<string, string> = {
    'e3-memory.svg': lineChart({
      title: 'E3: memory utilisation across machines (32 GB each)',
      xLabel: 'tick (s)',
      yLabel: 'memory in use / RAM',
      series: [
        { name: 'p10', points: mem.map((m) => [m.tick, m.p10]) },
        { name: 'p50', points: mem.map((m) => [m.tick, m.p50]) },
        { name: 'p90', points: mem.map((m) => [m.tick, m.p90]) },
      ],
    }),
    'e3-swap.svg': lineChart({
      title: 'E3: swapped memory per machine',
      xLabel: 'tick (s)',
      yLabel: 'MB swapped',
      series: [
        { name: 'median machine', points: mem.map((m) => [m.tick, m.swapP50Mb]) },
        { name: 'max machine', points: mem.map((m) => [m.tick, m.swapMaxMb]) },
      ],
    }),
  };
  const q = (p: number): number => round(sortedPeak[Math.min(sortedPeak.length - 1, Math.floor(p * sortedPeak.length))] ?? 0, 0);
  const summary = [
    `- memory in use / RAM across machines (mean over the run of the per-tick percentiles): p10 ${round(avgOf(mem, 'p10'), 2)}, p50 ${round(avgOf(mem, 'p50'), 2)}, p90 ${round(avgOf(mem, 'p90'), 2)}`,
    `- machines that swapped: ${swappers} of ${cluster.machines}; peak swap per machine p10/p50/p90/max: ${q(0.1)}/${q(0.5)}/${q(0.9)}/${swapNeededMb} MB`,
    `- swap-outs by class (of which the invocation was running): ${NAMES.map((n) => `${n} ${(byClass[n] as { swapOuts: number }).swapOuts} (${(byClass[n] as { ofWhichRunning: number }).ofWhichRunning})`).join(', ')}`,
    `- kills: ${r.killed} (${NAMES.map((n) => `${n} ${(byClass[n] as { killed: number }).killed}`).join(', ')}), with ${round(swapMb / 1024, 0)} GB of swap per machine`,
    `- swap a provider would need per machine (largest peak seen): ${round(swapNeededMb / 1024, 1)} GB`,
  ].join('\n');
  return { json: { experiment: 'e3', seed, quick, workload: w, cluster: { ...cluster, ramMb: cluster.ramMb }, byClass, kills: r.killed, peakSwapMbByMachine: peak.map((p) => round(p, 0)), swapNeededMb, memoryOverTime: mem, completed: r.completed, unfinished: r.unfinished }, plots, summary };
}

function avgOf(rows: { p10: number; p50: number; p90: number }[], k: 'p10' | 'p50' | 'p90'): number {
  const nonzero = rows.filter((r) => r.p50 > 0);
  return nonzero.reduce((a, r) => a + r[k], 0) / Math.max(1, nonzero.length);
}

/** E4: placement decision throughput at 10,000 machines × 32 cores (wall clock; a benchmark). */
export function e4(seed: number, quick: boolean, progress: (s: string) => void): ExperimentOutput {
  const machines = 10_000;
  const cores = 32;
  const shards = 4;
  const ops = quick ? 200_000 : 5_000_000;
  const rng = createRng(seed);
  const results: Record<string, unknown> = {};
  const time = (name: string, n: number, f: () => void): void => {
    f(); // warm-up pass is part of f's own loop; measure a second pass
    const t0 = performance.now();
    f();
    const s = (performance.now() - t0) / 1000;
    results[name] = { decisions: n, seconds: round(s, 3), perSecond: Math.round(n / s), nsPerDecision: round((s * 1e9) / n, 1) };
    progress(`${name}: ${Math.round(n / s).toLocaleString()} decisions/s`);
  };
  // Core pool: one shard claims a batch of cores and frees them again, repeatedly.
  const pool = new CorePool(shards, machines, cores);
  const batch = Math.min(ops, Math.floor(pool.totalCores / shards / 2));
  const rounds = Math.ceil(ops / batch);
  const held = new Int32Array(batch);
  time('corePool acquire+release, own shard', rounds * batch, () => {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < batch; i++) held[i] = pool.acquire(0);
      for (let i = 0; i < batch; i++) pool.release(held[i] as number);
    }
  });
  time('corePool acquire by stealing (own shard empty)', rounds * batch, () => {
    const drained: number[] = [];
    while (pool.idleOn(0) > 0) drained.push(pool.acquire(0));
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < batch; i++) held[i] = pool.acquire(0);
      for (let i = 0; i < batch; i++) pool.release(held[i] as number);
    }
    for (const c of drained) pool.release(c);
  });
  const load = new Float64Array(machines).map(() => rng.int(64));
  time('powerOfK k=3 over 10,000 machines', ops, () => {
    for (let i = 0; i < ops; i++) powerOfK(machines, 3, (m) => load[m] as number, rng);
  });
  const q = new ClassQueue<number>(classes, 1 << 22);
  time('shard multi-queue push+pop', ops, () => {
    for (let i = 0; i < ops; i++) q.push(i, NAMES[i % NAMES.length] as string, i);
    for (let i = 0; i < ops; i++) q.pop(ops + i);
  });
  const idle = new IdleLists({ shards, joinThresholdMb: 1000, updateDeltaMb: 100, k: 3 });
  for (let m = 0; m < 400; m++) idle.report(m, 2000 + m, m % 7, rng);
  const pickOps = Math.floor(ops / 10);
  time('idle list pick (100 idle machines per shard)', pickOps, () => {
    for (let i = 0; i < pickOps; i++) idle.pick(i % shards);
  });
  const nodes: NodeView[] = Array.from({ length: machines }, (_, i) => ({ id: `n${i}`, cores, busyCores: i % cores, memoryMb: 32768, freeMemoryMb: 16384, running: i % 50, sameFunction: 0, hasCode: false, idle: false }));
  const pipe = new PlacementPipeline({ filters: [capacityFit], scorers: [{ plugin: leastLoaded, weight: 1 }, { plugin: freeCores, weight: 1 }], sampleK: 3 });
  time('placement pipeline, 3 sampled of 10,000', pickOps, () => {
    for (let i = 0; i < pickOps; i++) pipe.place(nodes, { memoryHintMb: 128 }, rng);
  });
  const rows = Object.entries(results).map(([k, v]) => {
    const r = v as { perSecond: number; nsPerDecision: number };
    return `| ${k} | ${r.perSecond.toLocaleString('en-US')} | ${r.nsPerDecision} |`;
  });
  const summary = ['| structure (one scheduler core) | decisions/s | ns per decision |', '|---|---|---|', ...rows].join('\n');
  return { json: { experiment: 'e4', seed, quick, machines, coresPerMachine: cores, shards, results }, plots: {}, summary };
}
