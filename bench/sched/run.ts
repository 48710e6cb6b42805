import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { describeMachine } from '../lib/machine.js';
import { percentile, round } from '../lib/stats.js';
import { runTimedThreads, type TimedTask } from '../../src/scheduler/pool-exercise.js';
import { SharedCorePool } from '../../src/scheduler/shared-core-pool.js';
import { COLD_HEARTBEAT_MS, COLD_NODE_MEMORY_MB, MAX_COLD_NODES, POOL_CORES_PER_MACHINE, runColdThreads } from './cold.js';

const HELP = `baton bench sched — scheduling decisions per second on the shared core pool, and cold
invocations per second through the data plane, with 1 and more scheduler threads

  --threads t1,t2,...     scheduler threads (default 1,2)
  --machines N            pool: worker machines (default 10000)
  --cores-per-machine C   pool: cores per machine (default 32)
  --duration S            seconds measured per configuration and round (default 1)
  --rounds N              rounds; the configurations take turns in each (default 5)
  --hold N                pool: cores each thread keeps claimed (default 256)
  --warmup MS             unmeasured work before each measurement (default 300)
  --workloads w1,w2       pool: own, steal or both (default own,steal)
  --measure m1,m2         pool (decisions on the pool), cold (cold invocations
                          through the data plane) or both (default pool,cold)
  --nodes N               cold: worker slots in the shared node table (default 1000)
  --node-cores C          cold: cores each worker offers, at most ${POOL_CORES_PER_MACHINE} (default 8)
  --functions N           cold: functions each thread owns, invoked in turn (default 1000)
  --node-memory MB        cold: each worker's memory; placement takes 64 MB per new
                          sandbox, heartbeats give it back (default ${COLD_NODE_MEMORY_MB},
                          the most the node table holds)
  --out FILE              write the results as JSON

pool — a decision is one acquire plus one release of an idle worker core:
each thread keeps --hold cores claimed and, as fast as it can, frees its
oldest one and claims another. Pure data-structure decisions, no I/O: no
network, no control plane, no sandbox, so the figures bound what the pool
itself can sustain.

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
hypervisor's steal included), over the same round.

cold — cold invocations per second through the real data-plane code, no
network. The main thread builds the shared capacity as the control plane
does: a SharedNodes table of --nodes worker slots (opened with --node-memory,
then ready) and a SharedCorePool with one shard per thread and
${POOL_CORES_PER_MACHINE} cores per machine, each worker's --node-cores cores added. Each
thread is one scheduler core: a Dispatcher with a CorePlacement on its shard,
a NodeMirror for every worker (all ready) and its own --functions functions
(runtime http, concurrency 1, max scale 1). A mirror's send does no I/O: the
thread answers each frame at once, as a worker would. One cold invocation: a
call to a function with no sandbox is queued and placed (an idle core claimed
in the pool, memory taken in SharedNodes), create is sent; sandboxReady →
the call is dispatched, invoke is sent; result → the call is answered, its
core released; the sandbox is deleted (as scale-to-zero does), so the
function's next call is cold again. One call is in flight per thread. Every
${COLD_HEARTBEAT_MS} ms the main thread writes every worker's free memory back, as
heartbeats do. Not included: HTTP, the data links, frame encoding, the
worker, messages between threads, metrics, usage records and the autoscaler.
After each run: the pool must be whole (audit clean, every core idle in its
own shard), every worker's shared busy count zero, and every thread's
sandboxes deleted and calls answered — else the run fails. Reported like
the pool's figures, with steals, the workers placed on, and invocations per
CPU-second of the process (what a core gives when the run had fewer cores
than threads). Besides the ratio of the medians, the median of each round's
own 2-thread/1-thread ratio: a round's runs are seconds apart, so a slow
phase of a shared machine falls on both.`;

export type Workload = 'own' | 'steal';
export type Measure = 'pool' | 'cold';

export interface SchedOptions {
  threads: number[];
  machines: number;
  coresPerMachine: number;
  durationS: number;
  rounds: number;
  hold: number;
  warmupMs: number;
  workloads: Workload[];
  /** What to measure: decisions on the pool, cold invocations through the data plane. */
  measure: Measure[];
  /** cold: worker slots, cores per worker, functions per thread. */
  nodes: number;
  nodeCores: number;
  functions: number;
  nodeMemoryMb: number;
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

/** Cold invocations through the data plane with one thread count. */
export interface ColdResult {
  threads: number;
  /** Completed cold invocations per second, all threads together, one per round. */
  perSecond: number[];
  medianPerSec: number;
  minPerSec: number;
  maxPerSec: number;
  /** The median ÷ threads. */
  perThreadPerSec: number;
  /** Wall-clock µs per cold invocation within one thread, at the median. */
  usPerInvocation: number;
  /** Cold invocations per CPU-second of the whole process, at the median round. */
  perCpuSecond: number;
  /** Claims that took a core from another shard's list, all threads, at the median round. */
  steals: number;
  /** Worker slots the threads placed sandboxes on, all threads together, at the median round. */
  workersUsed: number;
  /** Cores the benchmark process had while measuring (its CPU time ÷ wall time), at the median round. */
  coresUsed: number;
  /** Busy cores of the machine not used by this benchmark during that round (/proc/stat, steal included); null where not reported. */
  otherCores: number | null;
  /** coresUsed and otherCores of every round, in the order of perSecond. */
  coresUsedByRound: number[];
  otherCoresByRound: (number | null)[];
}

export interface ColdReport {
  /** What one cold invocation is, in a line. */
  invocation: string;
  nodes: number;
  nodeCores: number;
  nodeMemoryMb: number;
  poolCoresPerMachine: number;
  functionsPerThread: number;
  /** How often the main thread wrote every worker's memory back. */
  heartbeatMs: number;
  /** Checked after every run (a failed check fails the benchmark). */
  checks: string[];
  results: ColdResult[];
  ratios: { label: string; ratio: number }[];
}

export interface SchedReport {
  benchmark: 'sched';
  /** Of the pool measurement (`results`); the cold one (`cold`) runs the data plane. */
  pureDataStructure: true;
  machine: Record<string, string | number>;
  loadAverage: { start: number[]; end: number[] };
  config: SchedOptions;
  results: SchedResult[];
  ratios: { label: string; ratio: number }[];
  /** Present when cold invocations were measured. */
  cold?: ColdReport;
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
      measure: { type: 'string', default: 'pool,cold' },
      nodes: { type: 'string', default: '1000' },
      'node-cores': { type: 'string', default: '8' },
      functions: { type: 'string', default: '1000' },
      'node-memory': { type: 'string', default: String(COLD_NODE_MEMORY_MB) },
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
  const measure = values.measure.split(',').map((m) => {
    const t = m.trim();
    if (t !== 'pool' && t !== 'cold') throw new RangeError(`--measure: expected pool and/or cold, got "${t}"`);
    return t;
  });
  const nodes = int('nodes', values.nodes, 1);
  if (nodes > MAX_COLD_NODES) throw new RangeError(`--nodes: at most ${MAX_COLD_NODES} (the pool tracks ${POOL_CORES_PER_MACHINE} cores per worker), got "${values.nodes}"`);
  const nodeCores = int('node-cores', values['node-cores'], 1);
  if (nodeCores > POOL_CORES_PER_MACHINE) throw new RangeError(`--node-cores: at most ${POOL_CORES_PER_MACHINE}, got "${values['node-cores']}"`);
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
    measure: [...new Set(measure)],
    nodes,
    nodeCores,
    functions: int('functions', values.functions, 1),
    nodeMemoryMb: int('node-memory', values['node-memory'], 64),
  };
  if (o.nodeMemoryMb > COLD_NODE_MEMORY_MB) throw new RangeError(`--node-memory: at most ${COLD_NODE_MEMORY_MB} MB, got "${values['node-memory']}"`);
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

interface ColdSample {
  perSecond: number;
  steals: number;
  workersUsed: number;
  coresUsed: number;
  otherCores: number | null;
}

async function measureCold(o: SchedOptions, threads: number): Promise<ColdSample> {
  const busy0 = machineBusySeconds();
  const own0 = ownCpuSeconds();
  const t0 = performance.now();
  // throws if the run left state behind or the pool is not whole again
  const run = await runColdThreads({ threads, nodes: o.nodes, nodeCores: o.nodeCores, functions: o.functions, durationMs: o.durationS * 1000, warmupMs: o.warmupMs, nodeMemoryMb: o.nodeMemoryMb });
  const wallS = (performance.now() - t0) / 1000;
  const busy1 = machineBusySeconds();
  const own1 = ownCpuSeconds();
  const first = run.threads[0] as (typeof run.threads)[number];
  return {
    perSecond: run.threads.reduce((n, r) => n + r.cold / r.seconds, 0),
    steals: run.threads.reduce((n, r) => n + r.steals, 0),
    workersUsed: run.threads.reduce((n, r) => n + r.slotsUsed, 0),
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
  const pool = o.measure.includes('pool');
  const cold = o.measure.includes('cold');
  const configs: SchedConfig[] = pool ? o.workloads.flatMap((workload) => [{ workload, impl: 'sequential' as const, threads: 1 }, ...o.threads.map((threads) => ({ workload, impl: 'shared' as const, threads }))]) : [];
  checkCapacity(o, configs);
  const coldThreads = cold ? o.threads : [];
  const loadStart = loadavg().map((l) => round(l, 2));
  const samples = configs.map(() => [] as Sample[]);
  const coldSamples = coldThreads.map(() => [] as ColdSample[]);
  // every measurement of a round: the pool's configurations, then the cold ones
  const jobs = [...configs.map((_, i) => ({ cold: false, i })), ...coldThreads.map((_, i) => ({ cold: true, i }))];
  for (let r = 0; r < o.rounds; r++) {
    // alternate the order (A B C, C B A, …) so slow drifts in the machine's load fall on every configuration alike
    const order = r % 2 === 1 ? [...jobs].reverse() : jobs;
    for (const job of order) {
      if (job.cold) {
        const threads = coldThreads[job.i] as number;
        progress(`round ${r + 1}/${o.rounds}: cold invocations, ${threads} thread${threads === 1 ? '' : 's'}`);
        (coldSamples[job.i] as ColdSample[]).push(await measureCold(o, threads));
        continue;
      }
      const c = configs[job.i] as SchedConfig;
      progress(`round ${r + 1}/${o.rounds}: ${label(c)}`);
      (samples[job.i] as Sample[]).push(await measure(o, c));
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
  for (const w of pool ? o.workloads : []) {
    const of = (impl: SchedConfig['impl'], threads: number): SchedResult | undefined => results.find((x) => x.workload === w && x.impl === impl && x.threads === threads);
    const one = of('shared', 1);
    const seq = of('sequential', 1);
    for (const t of o.threads) {
      const many = of('shared', t);
      if (t !== 1 && one !== undefined && many !== undefined) ratios.push({ label: `${w}: shared ${t} threads / shared 1 thread`, ratio: round(many.medianPerSec / one.medianPerSec, 2) });
    }
    if (one !== undefined && seq !== undefined) ratios.push({ label: `${w}: shared 1 thread / sequential 1 thread`, ratio: round(one.medianPerSec / seq.medianPerSec, 2) });
  }
  const report: SchedReport = { benchmark: 'sched', pureDataStructure: true, machine: describeMachine(), loadAverage: { start: loadStart, end: [] }, config: o, results, ratios };
  if (cold) report.cold = coldReport(o, coldThreads, coldSamples);
  report.loadAverage.end = loadavg().map((l) => round(l, 2));
  return report;
}

function coldReport(o: SchedOptions, threads: readonly number[], samples: readonly ColdSample[][]): ColdReport {
  const results: ColdResult[] = threads.map((t, i) => {
    const s = samples[i] as ColdSample[];
    const perSecond = s.map((x) => x.perSecond);
    const median = percentile(perSecond, 50);
    const atMedian = s.find((x) => x.perSecond === median) as ColdSample;
    return {
      threads: t,
      perSecond: perSecond.map((x) => Math.round(x)),
      medianPerSec: Math.round(median),
      minPerSec: Math.round(Math.min(...perSecond)),
      maxPerSec: Math.round(Math.max(...perSecond)),
      perThreadPerSec: Math.round(median / t),
      usPerInvocation: round((t * 1e6) / median, 2),
      perCpuSecond: Math.round(median / atMedian.coresUsed),
      steals: atMedian.steals,
      workersUsed: atMedian.workersUsed,
      coresUsed: round(atMedian.coresUsed, 2),
      otherCores: atMedian.otherCores === null ? null : round(atMedian.otherCores, 2),
      coresUsedByRound: s.map((x) => round(x.coresUsed, 2)),
      otherCoresByRound: s.map((x) => (x.otherCores === null ? null : round(x.otherCores, 2))),
    };
  });
  const ratios: { label: string; ratio: number }[] = [];
  const one = results.find((r) => r.threads === 1);
  const oneSamples = samples[threads.indexOf(1)];
  results.forEach((r, i) => {
    if (one === undefined || oneSamples === undefined || r.threads === 1) return;
    ratios.push({ label: `cold: ${r.threads} threads / 1 thread`, ratio: round(r.medianPerSec / one.medianPerSec, 2) });
    // each round's own ratio: a round's two runs are seconds apart, so a slow phase of a shared machine falls on both
    const byRound = (samples[i] as ColdSample[]).map((x, k) => x.perSecond / (oneSamples[k] as ColdSample).perSecond);
    ratios.push({ label: `cold: ${r.threads} threads / 1 thread, median of the rounds' own ratios`, ratio: round(percentile(byRound, 50), 2) });
    ratios.push({ label: `cold per CPU-second: ${r.threads} threads / 1 thread`, ratio: round(r.perCpuSecond / one.perCpuSecond, 2) });
  });
  return {
    invocation: 'invoke (no sandbox) → placed: core claimed, memory taken → create → sandboxReady → invoke → result → core released → sandbox deleted',
    nodes: o.nodes,
    nodeCores: o.nodeCores,
    nodeMemoryMb: o.nodeMemoryMb,
    poolCoresPerMachine: POOL_CORES_PER_MACHINE,
    functionsPerThread: o.functions,
    heartbeatMs: COLD_HEARTBEAT_MS,
    checks: [
      'every thread: no sandbox left, every function at scale 0 with no call queued or in flight, every call answered 200, sandboxes created = ready = gone = invocations',
      'pool: audit() clean, every core idle, each shard holding exactly its own workers\' cores',
      'shared node table: every worker\'s busy count and busy-by-class counts zero',
    ],
    results,
    ratios,
  };
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

const thousands = (n: number): string => `${(n / 1e3).toFixed(1)} k`;

export function formatColdTable(results: readonly ColdResult[]): string {
  const head = ['threads', 'cold invocations/s (median)', 'min', 'max', 'per thread', 'µs/invocation per thread', 'per CPU-second', 'steals', 'workers used', 'cores used', 'other load'];
  const rows = results.map((r) => [
    String(r.threads),
    thousands(r.medianPerSec),
    thousands(r.minPerSec),
    thousands(r.maxPerSec),
    thousands(r.perThreadPerSec),
    String(r.usPerInvocation),
    thousands(r.perCpuSecond),
    String(r.steals),
    String(r.workersUsed),
    String(r.coresUsed),
    r.otherCores === null ? 'n/a' : String(r.otherCores),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export async function runSchedCli(argv: string[]): Promise<void> {
  const o = parseSchedArgs(argv);
  if (o === undefined) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  // the directory first: a missing one would lose the whole run at the end
  if (o.out !== undefined) mkdirSync(dirname(o.out), { recursive: true });
  const report = await runSchedBench(o);
  const m = report.machine;
  process.stdout.write(
    `\non ${String(m['cpu'])} × ${String(m['cores'])}, node ${String(m['node'])}; load average ${report.loadAverage.start.join(' ')} at start, ${report.loadAverage.end.join(' ')} at end\n` +
      `median of ${o.rounds} rounds of ${o.durationS} s each (configurations interleaved); a shared machine moves these by tens of percent\n`,
  );
  if (o.measure.includes('pool')) {
    process.stdout.write(`\nscheduling decisions (pure data structure, no I/O): acquire + release of an idle core, ${o.machines} machines × ${o.coresPerMachine} cores, ${o.hold} held per thread\n\n`);
    process.stdout.write(`${formatSchedTable(report.results)}\n\n`);
    for (const q of report.ratios) process.stdout.write(`${q.label}: ${q.ratio}×\n`);
  }
  const cold = report.cold;
  if (cold !== undefined) {
    process.stdout.write(
      `\ncold invocations through the data plane (Dispatcher + CorePlacement per thread, no network): ${cold.invocation}\n` +
        `${cold.nodes} workers × ${cold.nodeCores} cores, ${cold.nodeMemoryMb} MB each (given back every ${cold.heartbeatMs} ms), on one shared node table and core pool; ${cold.functionsPerThread} functions per thread, one call in flight per thread; state checked after every run\n\n`,
    );
    process.stdout.write(`${formatColdTable(cold.results)}\n\n`);
    for (const q of cold.ratios) process.stdout.write(`${q.label}: ${q.ratio}×\n`);
  }
  if (o.out !== undefined) {
    writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`results written to ${o.out}\n`);
  }
}
