import { describe, expect, it } from 'vitest';
import { runColdThreads, type ColdRun } from './cold.js';
import { formatColdTable, formatSchedTable, parseSchedArgs, runSchedBench, type ColdResult, type SchedResult } from './run.js';

describe('bench sched options', () => {
  it('has defaults, sorts and dedupes thread counts, and returns nothing for --help', () => {
    expect(parseSchedArgs([])).toEqual({ threads: [1, 2], machines: 10_000, coresPerMachine: 32, durationS: 1, rounds: 5, hold: 256, warmupMs: 300, workloads: ['own', 'steal'], measure: ['pool', 'cold'], nodes: 1000, nodeCores: 8, functions: 1000, nodeMemoryMb: 2 ** 31 - 1 });
    expect(parseSchedArgs(['--threads', '4,1,2,2', '--workloads', 'steal', '--out', 'x.json'])).toMatchObject({ threads: [1, 2, 4], workloads: ['steal'], out: 'x.json' });
    expect(parseSchedArgs(['--measure', 'cold,cold', '--nodes', '10', '--node-cores', '64', '--functions', '5'])).toMatchObject({ measure: ['cold'], nodes: 10, nodeCores: 64, functions: 5 });
    expect(parseSchedArgs(['--help'])).toBeUndefined();
  });

  it('names the option that is wrong', () => {
    expect(() => parseSchedArgs(['--threads', '1,0'])).toThrow(new RangeError('--threads: expected an integer ≥ 1, got "0"'));
    expect(() => parseSchedArgs(['--machines', '2.5'])).toThrow(/--machines: expected an integer ≥ 1, got "2.5"/);
    expect(() => parseSchedArgs(['--duration', '0'])).toThrow(/--duration: expected seconds > 0, got "0"/);
    expect(() => parseSchedArgs(['--workloads', 'own,mine'])).toThrow(/--workloads: expected own and\/or steal, got "mine"/);
    expect(() => parseSchedArgs(['--measure', 'pool,warm'])).toThrow(/--measure: expected pool and\/or cold, got "warm"/);
    expect(() => parseSchedArgs(['--node-cores', '65'])).toThrow(/--node-cores: at most 64, got "65"/);
    expect(() => parseSchedArgs(['--nodes', '40000'])).toThrow(/--nodes: at most 32768/);
    expect(() => parseSchedArgs(['--functions', '0'])).toThrow(/--functions: expected an integer ≥ 1, got "0"/);
    expect(() => parseSchedArgs(['--node-memory', '63'])).toThrow(/--node-memory: expected an integer ≥ 64, got "63"/);
    expect(() => parseSchedArgs(['--node-memory', String(2 ** 31)])).toThrow(/--node-memory: at most 2147483647 MB/);
    expect(() => parseSchedArgs(['--bogus'])).toThrow(/bogus/);
  });

  it('refuses, before starting any thread, a --hold the pool cannot give every thread', async () => {
    const own = parseSchedArgs(['--machines', '4', '--cores-per-machine', '8', '--hold', '17', '--workloads', 'own']);
    if (own === undefined) throw new Error('no options');
    // 2 shards of 2 machines: 16 cores each
    await expect(runSchedBench(own)).rejects.toThrow(new RangeError('--hold 17: with 2 thread(s), workload own, a shard has 16 cores for 17 held; use more --machines or a smaller --hold'));
    const steal = parseSchedArgs(['--machines', '4', '--cores-per-machine', '8', '--hold', '8', '--workloads', 'steal']);
    if (steal === undefined) throw new Error('no options');
    // 3 shards: the shard both threads steal from has 1 machine, 8 cores, for 2 × 8 held
    await expect(runSchedBench(steal)).rejects.toThrow(/^--hold 8: with 2 thread\(s\), workload steal, a shard has 8 cores for 16 held/);
  });

  it('prints one row per configuration, with a dash where the sequential pool counts no steals', () => {
    const r: SchedResult = { workload: 'own', impl: 'sequential', threads: 1, shards: 1, perSecond: [1e6], medianPerSec: 12_345_678, minPerSec: 1e7, maxPerSec: 2e7, nsPerDecision: 81, stealsPerDecision: null, coresUsed: 1, otherCores: null };
    const table = formatSchedTable([r, { ...r, impl: 'shared', threads: 2, stealsPerDecision: 0, otherCores: 0.1 }]).split('\n');
    expect(table).toHaveLength(4);
    expect(table[2]).toMatch(/^\| own +\| sequential \| +1 \| +12\.35 M \| +10\.00 M \| +20\.00 M \| +81 \| +- \| +1 \| +n\/a \|$/);
    expect(table[3]).toMatch(/\| shared +\| +2 \|.*\| +0 \| +1 \| +0\.1 \|$/);
  });
});

/** What every cold run must leave: nothing on the threads, the pool whole, no worker busy. */
function expectClean(run: ColdRun, threads: number, nodes: number, nodeCores: number): void {
  expect(run.threads).toHaveLength(threads);
  expect(run.audit).toEqual([]);
  expect(run.totalCores).toBe(nodes * nodeCores);
  expect(run.idleCores).toBe(run.totalCores);
  expect(run.busyLeft).toBe(0);
  for (const t of run.threads) {
    expect(t.problems).toEqual([]);
    expect(t.cold).toBeGreaterThan(0);
    expect(t.sandboxesLeft).toBe(0);
    // every invocation made one sandbox, and every sandbox was deleted
    expect(t.created).toBe(t.warmupCold + t.cold);
    expect(t.gone).toBe(t.created);
    expect(t.answered).toBe(t.created);
  }
}

// the threads run the compiled data plane: `npm run build` first (`npm test` does)
describe('bench sched cold invocations', () => {
  it('runs cold invocations through the data plane on 1 and 2 threads and leaves no state behind', async () => {
    for (const threads of [1, 2]) {
      const run = await runColdThreads({ threads, nodes: 20, nodeCores: 4, functions: 50, durationMs: 150, warmupMs: 20 });
      expectClean(run, threads, 20, 4);
      // each thread claims from its own shard's list: no steal, only its own workers
      for (const t of run.threads) expect(t.steals).toBe(0);
    }
  });

  it('stays consistent when both threads place on the one worker (every claim of the second thread a steal)', async () => {
    // one worker: its cores are in shard 0's list, shard 1 has none
    const run = await runColdThreads({ threads: 2, nodes: 1, nodeCores: 2, functions: 10, durationMs: 200, warmupMs: 0 });
    expectClean(run, 2, 1, 2);
    const [t0, t1] = run.threads as [ColdRun['threads'][number], ColdRun['threads'][number]];
    expect(t0.steals).toBe(0);
    expect(t1.steals).toBe(t1.cold);
    expect(t0.slotsUsed).toBe(1);
    expect(t1.slotsUsed).toBe(1);
  });

  it('reports the cold figures with the pool ones, a ratio per thread count', async () => {
    const o = parseSchedArgs(['--measure', 'cold', '--duration', '0.1', '--rounds', '2', '--warmup', '10', '--nodes', '8', '--node-cores', '2', '--functions', '4']);
    if (o === undefined) throw new Error('no options');
    const r = await runSchedBench(o);
    expect(r.results).toEqual([]);
    expect(r.cold?.results.map((x) => [x.threads, x.perSecond.length])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    for (const x of r.cold?.results ?? []) expect(x.medianPerSec).toBeGreaterThan(0);
    expect(r.cold?.ratios.map((x) => x.label)).toEqual(['cold: 2 threads / 1 thread', "cold: 2 threads / 1 thread, median of the rounds' own ratios", 'cold per CPU-second: 2 threads / 1 thread']);
  });

  it('prints one row per thread count', () => {
    const r: ColdResult = { threads: 1, perSecond: [40_000], medianPerSec: 41_234, minPerSec: 40_000, maxPerSec: 42_000, perThreadPerSec: 41_234, usPerInvocation: 24.25, perCpuSecond: 45_000, steals: 0, workersUsed: 1, coresUsed: 0.92, otherCores: null, coresUsedByRound: [0.92], otherCoresByRound: [null] };
    const table = formatColdTable([r, { ...r, threads: 2, otherCores: 0.3 }]).split('\n');
    expect(table).toHaveLength(4);
    expect(table[2]).toMatch(/^\| +1 \| +41\.2 k \| +40\.0 k \| +42\.0 k \| +41\.2 k \| +24\.25 \| +45\.0 k \| +0 \| +1 \| +0\.92 \| +n\/a \|$/);
    expect(table[3]).toMatch(/^\| +2 \|.*\| +0\.3 \|$/);
  });
});
