import { describe, expect, it } from 'vitest';
import { formatSchedTable, parseSchedArgs, runSchedBench, type SchedResult } from './run.js';

describe('bench sched options', () => {
  it('has defaults, sorts and dedupes thread counts, and returns nothing for --help', () => {
    expect(parseSchedArgs([])).toEqual({ threads: [1, 2], machines: 10_000, coresPerMachine: 32, durationS: 1, rounds: 5, hold: 256, warmupMs: 300, workloads: ['own', 'steal'] });
    expect(parseSchedArgs(['--threads', '4,1,2,2', '--workloads', 'steal', '--out', 'x.json'])).toMatchObject({ threads: [1, 2, 4], workloads: ['steal'], out: 'x.json' });
    expect(parseSchedArgs(['--help'])).toBeUndefined();
  });

  it('names the option that is wrong', () => {
    expect(() => parseSchedArgs(['--threads', '1,0'])).toThrow(new RangeError('--threads: expected an integer ≥ 1, got "0"'));
    expect(() => parseSchedArgs(['--machines', '2.5'])).toThrow(/--machines: expected an integer ≥ 1, got "2.5"/);
    expect(() => parseSchedArgs(['--duration', '0'])).toThrow(/--duration: expected seconds > 0, got "0"/);
    expect(() => parseSchedArgs(['--workloads', 'own,mine'])).toThrow(/--workloads: expected own and\/or steal, got "mine"/);
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
