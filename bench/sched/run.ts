import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { describeMachine } from '../lib/machine.js';
import { percentile, round } from '../lib/stats.js';
import { runTimedThreads, type TimedTask } from '../../src/scheduler/pool-exercise.js';
import { SharedCorePool } from '../../src/scheduler/shared-core-pool.js';

const HELP = `baton bench sched — scheduling decisions per second on the shared core pool, 1 and more threads

  --threads t1,t2,...     scheduler threads on the shared pool (default 1,2)
  --machines N            worker machines in the pool (default 10000)
  --cores-per-machine C   cores per machine (default 32)
  --duration S            seconds measured per configuration and round (default 1)
  --rounds N              rounds; the configurations take turns in each (default 5)
  --hold N                cores each thread keeps claimed (default 256)
  --warmup MS             unmeasured decisions before each measurement (default 300)
  --workloads w1,w2       own, steal or both (default own,steal)
  --out FILE              write the results as JSON

A decision is one acquire plus one release of an idle worker core: each thread
keeps --hold cores claimed and, as fast as it can, frees its oldest one and
claims another. Pure data-structure decisions, no I/O: no network, no control
plane, no sandbox, so the figures bound what the pool itself can sustain.

Workloads: own — one shard per thread, each thread claims from its own list
(machines dealt round-robin to the shards). steal — one more shard than
threads, and each thread first claims every core of its own list and keeps
them, so every measured claim steals from the extra shard's list (the threads
contend on one list).

Each configuration runs in its own worker threads (fresh ones per round): the
sequential CorePool (src/policies/core-pool.ts, one thread: the baseline) and
the SharedCorePool (src/scheduler/shared-core-pool.ts) with each --threads
count. Reported: the median over rounds of decisions per second (all threads
together), min and max, the 2-thread/1-thread ratio, and steals (claims from
another shard's list). On a shared or busy machine, expect tens of percent
between rounds; so that a ratio can be read against what the run really got,
the table also shows, for the median round, the cores the benchmark process
had while measuring (its CPU time ÷ wall time) and the other load: busy cores
of the machine that were not the benchmark's (from /proc/stat, the
hypervisor's steal included), over the same round.`;

export type Workload = 'own' | 'steal';

export interface SchedOptions {
  threads: number[];
  machines: number;
  coresPerMachine: number;
  durationS: number;
  rounds: number;
  hold: number;
  warmupMs: number;
  workloads: Workload[];
  out?: string;
}

/** One measured setting: a pool implementation, a workload and a thread count. */
export interface SchedConfig {
  workload: Workload;
  impl: 'sequential' | 'shared';
  threads: number;
}

export interface SchedResult extends SchedConfig {
  shards: number;
  /** Decisions per second, all threads together, one per round. */
  perSecond: number[];
  medianPerSec: number;
  minPerSec: number;
  maxPerSec: number;
  /** Wall-clock ns per decision within one thread, at the median. */
  nsPerDecision: number;
  /** Claims that took a core from another shard's list, per decision, at the median round; null for the sequential pool. */
  stealsPerDecision: number | null;
  /** Cores the benchmark process had while measuring (its CPU time ÷ wall time), at the median round. */
  coresUsed: number;
  /** Busy cores of the machine not used by this benchmark during that round (/proc/stat, steal included); null where not reported. */
  otherCores: number | null;
}

export interface SchedReport {
  benchmark: 'sched';
  pureDataStructure: true;
  machine: Record<string, string | number>;
  loadAverage: { start: number[]; end: number[] };
  config: SchedOptions;
  results: SchedResult[];
  ratios: { label: string; ratio: number }[];
}

export function parseSchedArgs(argv: string[]): SchedOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      threads: { type: 'string', default: '1,2' },
      machines: { type: 'string', default: '10000' },
      'cores-per-machine': { type: 'string', default: '32' },
      duration: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '5' },
      hold: { type: 'string', default: '256' },
      warmup: { type: 'string', default: '300' },
      workloads: { type: 'string', default: 'own,steal' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name}: expected an integer ≥ ${min}, got "${v}"`);
    return n;
  };
  const threads = values.threads.split(',').map((t) => int('threads', t.trim(), 1));
  const workloads = values.workloads.split(',').map((w) => {
    const t = w.trim();
    if (t !== 'own' && t !== 'steal') throw new RangeError(`--workloads: expected own and/or steal, got "${t}"`);
    return t;
  });
  const duration = Number(values.duration);
  if (!Number.isFinite(duration) || duration <= 0) throw new RangeError(`--duration: expected seconds > 0, got "${values.duration}"`);
  const o: SchedOptions = {
    threads: [...new Set(threads)].sort((a, b) => a - b),
    machines: int('machines', values.machines, 1),
    coresPerMachine: int('cores-per-machine', values['cores-per-machine'], 1),
    durationS: duration,
    rounds: int('rounds', values.rounds, 1),
    hold: int('hold', values.hold, 1),
    warmupMs: int('warmup', values.warmup, 0),
    workloads: [...new Set(workloads)],
  };
  if (values.out !== undefined) o.out = values.out;
  return o;
}

const shardsFor = (c: SchedConfig): number => (c.workload === 'own' ? c.threads : c.threads + 1);

/** Each thread must be able to claim --hold cores without finding the pool empty; say which setting breaks that. */
function checkCapacity(o: SchedOptions, configs: readonly SchedConfig[]): void {
  for (const c of configs) {
    const shards = shardsFor(c);
    // the shard with the fewest machines gets floor(machines / shards); in `steal`, only the last shard's cores are claimable
    const perShard = Math.floor(o.machines / shards) * o.coresPerMachine;
    const need = c.workload === 'own' ? o.hold : o.hold * c.threads;
    if (perShard < need) {
      throw new RangeError(`--hold ${o.hold}: with ${c.threads} thread(s), workload ${c.workload}, a shard has ${perShard} cores for ${need} held; use more --machines or a smaller --hold`);
    }
  }
}

interface Sample {
  perSecond: number;
  steals: number | null;
  decisions: number;
  coresUsed: number;
  otherCores: number | null;
}

/**
 * CPU seconds the whole machine has been busy so far (Linux: /proc/stat, in
 * USER_HZ = 100 ticks: user, nice, system, irq, softirq and steal); null elsewhere.
 */
function machineBusySeconds(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? [];
    if (f[0] !== 'cpu') return null;
    const ticks = [1, 2, 3, 6, 7, 8].reduce((n, i) => n + Number(f[i] ?? 0), 0);
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

/** CPU seconds of this process so far, every thread. */
const ownCpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function measure(o: SchedOptions, c: SchedConfig): Promise<Sample> {
  const shards = shardsFor(c);
  const shared = c.impl === 'shared' ? SharedCorePool.create(shards, o.machines, o.coresPerMachine) : undefined;
  const tasks: TimedTask[] = Array.from({ length: c.threads }, (_, t) => ({
    kind: 'timed',
    impl: c.impl,
    pool: shared?.buffer ?? { shards, machines: o.machines, coresPerMachine: o.coresPerMachine },
    shard: t,
    hold: o.hold,
    drainOwn: c.workload === 'steal',
    warmupMs: o.warmupMs,
  }));
  const busy0 = machineBusySeconds();
  const own0 = ownCpuSeconds();
  const t0 = performance.now();
  const results = await runTimedThreads(tasks, o.durationS * 1000);
  const wallS = (performance.now() - t0) / 1000;
  const busy1 = machineBusySeconds();
  const own1 = ownCpuSeconds();
  if (shared !== undefined) {
    // every thread gave its cores back: the pool must be whole again
    const problems = shared.audit();
    if (shared.idleTotal() !== shared.totalCores) problems.push(`${shared.idleTotal()} of ${shared.totalCores} cores idle after the run`);
    if (problems.length > 0) throw new Error(`shared core pool inconsistent after ${c.threads} thread(s), ${c.workload}: ${problems.join('; ')}`);
  }
  const first = results[0] as (typeof results)[number];
  return {
    perSecond: results.reduce((n, r) => n + r.decisions / r.seconds, 0),
    steals: shared === undefined ? null : results.reduce((n, r) => n + (r.steals ?? 0), 0),
    decisions: results.reduce((n, r) => n + r.decisions, 0),
    coresUsed: first.processCpuSeconds / first.seconds,
    otherCores: busy0 === null || busy1 === null ? null : Math.max(0, busy1 - busy0 - (own1 - own0)) / wallS,
  };
}

function progress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${line.padEnd(100)}`);
  else process.stderr.write(`${line}\n`);
}

const label = (c: SchedConfig): string => `${c.impl}, ${c.workload}, ${c.threads} thread${c.threads === 1 ? '' : 's'}`;

export async function runSchedBench(o: SchedOptions): Promise<SchedReport> {
  const configs: SchedConfig[] = o.workloads.flatMap((workload) => [{ workload, impl: 'sequential' as const, threads: 1 }, ...o.threads.map((threads) => ({ workload, impl: 'shared' as const, threads }))]);
  checkCapacity(o, configs);
  const loadStart = loadavg().map((l) => round(l, 2));
  const samples = configs.map(() => [] as Sample[]);
  for (let r = 0; r < o.rounds; r++) {
    // alternate the order (A B C, C B A, …) so slow drifts in the machine's load fall on every configuration alike
    const order = configs.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      const c = configs[i] as SchedConfig;
      progress(`round ${r + 1}/${o.rounds}: ${label(c)}`);
      (samples[i] as Sample[]).push(await measure(o, c));
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  const results: SchedResult[] = configs.map((c, i) => {
    const s = samples[i] as Sample[];
    const perSecond = s.map((x) => x.perSecond);
    const median = percentile(perSecond, 50);
    const atMedian = s.find((x) => x.perSecond === median) as Sample;
    return {
      ...c,
      shards: shardsFor(c),
      perSecond: perSecond.map((x) => Math.round(x)),
      medianPerSec: Math.round(median),
      minPerSec: Math.round(Math.min(...perSecond)),
      maxPerSec: Math.round(Math.max(...perSecond)),
      nsPerDecision: round((c.threads * 1e9) / median, 1),
      stealsPerDecision: atMedian.steals === null ? null : round(atMedian.steals / atMedian.decisions, 3),
      coresUsed: round(atMedian.coresUsed, 2),
      otherCores: atMedian.otherCores === null ? null : round(atMedian.otherCores, 2),
    };
  });
  const ratios: { label: string; ratio: number }[] = [];
  for (const w of o.workloads) {
    const of = (impl: SchedConfig['impl'], threads: number): SchedResult | undefined => results.find((x) => x.workload === w && x.impl === impl && x.threads === threads);
    const one = of('shared', 1);
    const seq = of('sequential', 1);
    for (const t of o.threads) {
      const many = of('shared', t);
      if (t !== 1 && one !== undefined && many !== undefined) ratios.push({ label: `${w}: shared ${t} threads / shared 1 thread`, ratio: round(many.medianPerSec / one.medianPerSec, 2) });
    }
    if (one !== undefined && seq !== undefined) ratios.push({ label: `${w}: shared 1 thread / sequential 1 thread`, ratio: round(one.medianPerSec / seq.medianPerSec, 2) });
  }
  return { benchmark: 'sched', pureDataStructure: true, machine: describeMachine(), loadAverage: { start: loadStart, end: loadavg().map((l) => round(l, 2)) }, config: o, results, ratios };
}

const millions = (n: number): string => `${(n / 1e6).toFixed(2)} M`;

export function formatSchedTable(results: readonly SchedResult[]): string {
  const head = ['workload', 'pool', 'threads', 'decisions/s (median)', 'min', 'max', 'ns/decision per thread', 'steals/decision', 'cores used', 'other load'];
  const rows = results.map((r) => [
    r.workload,
    r.impl,
    String(r.threads),
    millions(r.medianPerSec),
    millions(r.minPerSec),
    millions(r.maxPerSec),
    String(r.nsPerDecision),
    r.stealsPerDecision === null ? '-' : String(r.stealsPerDecision),
    String(r.coresUsed),
    r.otherCores === null ? 'n/a' : String(r.otherCores),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export async function runSchedCli(argv: string[]): Promise<void> {
  const o = parseSchedArgs(argv);
  if (o === undefined) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const report = await runSchedBench(o);
  const m = report.machine;
  process.stdout.write(
    `\nscheduling decisions (pure data structure, no I/O): acquire + release of an idle core, ${o.machines} machines × ${o.coresPerMachine} cores, ${o.hold} held per thread\n` +
      `on ${String(m['cpu'])} × ${String(m['cores'])}, node ${String(m['node'])}; load average ${report.loadAverage.start.join(' ')} at start, ${report.loadAverage.end.join(' ')} at end\n` +
      `median of ${o.rounds} rounds of ${o.durationS} s each (configurations interleaved); a shared machine moves these by tens of percent\n\n`,
  );
  process.stdout.write(`${formatSchedTable(report.results)}\n\n`);
  for (const q of report.ratios) process.stdout.write(`${q.label}: ${q.ratio}×\n`);
  if (o.out !== undefined) {
    writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`results written to ${o.out}\n`);
  }
}
