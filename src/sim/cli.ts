import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { describeHost } from './host.js';
import { e1, e2, e3, e4, type ExperimentOutput } from './experiments.js';
import { round } from './metrics.js';
import { DEFAULT_CLUSTER, defaultClasses, simulate, type SchedulerName } from './simulate.js';
import { readTrace } from './trace.js';
import { defaultSynthetic, synthetic } from './workload.js';
import { createRng } from '../policies/rng.js';

const HELP = `baton sim — discrete-event simulation of price-class scheduling

The simulator runs the same policy code as the live system (src/policies/) on
virtual clusters. Defaults follow the papers (seeds 000/001 §4.1): 100 machines
× 8 cores, 4 scheduler shards, k = 3; open-loop Poisson arrivals; per-function
Pareto runtimes (α = 2.5, x_m ~ N(50 ms, 15 ms)); four price classes (batch 0.5,
standard 1, interactive 1.5, critical 2) drawn with bimodal weights
35/15/15/35 %; memory per invocation uniform 100 MB–10 GB, growing from 100 MB
over the run. Load = offered CPU demand as a fraction of all cores. A tick is
one second of simulated time. Same seed, same output, byte for byte.

usage: baton sim <experiment> [--seed N] [--out FILE] [--quick]

experiments:
  e1   load spike (seed 001, Figure 3): load 0.6, raised to 1.2 at tick 50,
       back to 0.6 at tick 80. p99 slowdown per class over time for XX (idle
       list off, as the paper does) and Hermod, memory unlimited. Reports the
       p99 slowdown before and during the spike per class and scheduler.
  e2   load sweep (seed 000, Figure 4): loads 0.5–1.1; p99 slowdown per class
       and the spread of core utilisation across machines, for Hermod, XX and
       a centralised EDF over all 800 cores.
  e3   memory (seeds 000/001, Figures 4/5): 32 GB machines, 500 GB swap each,
       idle list on, load 0.8. Spread of memory utilisation across machines
       over time, swapped MB per machine, which classes were swapped, kills,
       and the swap a provider would need.
  e4   scale: decision throughput of the scheduler structures (core pool with
       stealing, shard multi-queue, power-of-k, idle list, placement pipeline)
       at 10,000 machines × 32 cores, 4 shards. Wall-clock: a benchmark.
  run  one custom run: --scheduler xx|hermod|edf --load L --ticks N
       [--machines M --cores C --ram-gb G --swap-gb G --idle-list --trace PATH]
       (--trace: an Azure Functions CSV app,func,end_timestamp,duration, or an
       InVitro directory with invocations.csv and durations.csv)

options:
  --seed N       random seed (default 1)
  --out FILE     write the JSON result there, SVG plots next to it
  --quick        a small, fast configuration (for tests)
  -h, --help     this text`;

function write(out: string | undefined, name: string, res: ExperimentOutput): void {
  if (out === undefined) {
    process.stdout.write(`${res.summary}\n`);
    return;
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(res.json, null, 2)}\n`);
  for (const [file, svg] of Object.entries(res.plots)) writeFileSync(join(dirname(out), file), svg);
  writeFileSync(out.replace(/\.json$/, '') + '.md', `# ${name}\n\n${res.summary}\n`);
  process.stdout.write(`${res.summary}\n\nwrote ${out}${Object.keys(res.plots).length > 0 ? ` and ${Object.keys(res.plots).join(', ')}` : ''}\n`);
}

export function runSimCli(argv: string[]): Promise<void> {
  try {
    runSim(argv);
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

function runSim(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
      scheduler: { type: 'string', default: 'xx' },
      load: { type: 'string', default: '0.7' },
      ticks: { type: 'string', default: '30' },
      machines: { type: 'string', default: String(DEFAULT_CLUSTER.machines) },
      cores: { type: 'string', default: String(DEFAULT_CLUSTER.cores) },
      'ram-gb': { type: 'string' },
      'swap-gb': { type: 'string', default: '0' },
      'idle-list': { type: 'boolean', default: false },
      trace: { type: 'string' },
    },
  });
  const what = positionals[0];
  if (values.help === true || what === undefined) {
    process.stdout.write(`${HELP}\n`);
    if (what === undefined && values.help !== true) process.exitCode = 2;
    return;
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new RangeError(`--seed: expected an integer, got "${values.seed}"`);
  const progress = (s: string): void => void process.stderr.write(`  ${s}\n`);
  const quick = values.quick === true;
  switch (what) {
    case 'e1':
      return write(values.out, 'E1 load spike', e1(seed, quick, progress));
    case 'e2':
      return write(values.out, 'E2 load sweep', e2(seed, quick, progress));
    case 'e3':
      return write(values.out, 'E3 memory', e3(seed, quick, progress));
    case 'e4': {
      const res = e4(seed, quick, progress);
      res.json['machine'] = describeHost();
      return write(values.out, 'E4 scale', res);
    }
    case 'run':
      return runCustom(values, seed);
    default:
      throw new RangeError(`unknown experiment "${what}"; choose e1, e2, e3, e4 or run (see baton sim --help)`);
  }
}

function runCustom(v: Record<string, string | boolean | undefined>, seed: number): void {
  const scheduler = v['scheduler'] as SchedulerName;
  if (!['xx', 'hermod', 'edf'].includes(scheduler)) throw new RangeError(`--scheduler: expected xx, hermod or edf, got "${scheduler}"`);
  const classes = defaultClasses();
  const ram = v['ram-gb'] === undefined ? Infinity : Number(v['ram-gb']) * 1024;
  const cluster = { ...DEFAULT_CLUSTER, machines: Number(v['machines']), cores: Number(v['cores']), ramMb: ram, swapMb: Number(v['swap-gb']) * 1024, idleList: v['idle-list'] === true };
  const w = { ...defaultSynthetic(cluster.machines * cluster.cores), durationTicks: Number(v['ticks']), phases: [{ atTick: 0, load: Number(v['load']) }] };
  const draws = (() => {
    const rng = createRng(seed + 1);
    return { rank: () => (rng.next() < 0.5 ? (rng.next() < 0.7 ? 0 : 1) : rng.next() < 0.7 ? 3 : 2), memMb: () => rng.uniform(100, 10_240) };
  })();
  const trace = typeof v['trace'] === 'string' ? readTrace(v['trace'], draws, createRng(seed)) : undefined;
  if (trace !== undefined) w.durationTicks = Math.max(1, Math.ceil((trace.at(-1)?.arrival ?? 0) / w.tickMs) + 1);
  const t0 = performance.now();
  const r = simulate({ scheduler, cluster, classes, tickMs: w.tickMs, durationTicks: w.durationTicks, seed, workload: () => (trace !== undefined ? trace[Symbol.iterator]() : synthetic(w, classes, createRng(seed))) });
  const secs = (performance.now() - t0) / 1000;
  const out = {
    scheduler,
    arrivals: r.arrivals,
    completed: r.completed,
    killed: r.killed,
    unfinished: r.unfinished,
    events: r.events,
    classes: Object.fromEntries(classes.names().map((n, i) => [n, { slowdown: r.metrics.slowdown(i), latencyMs: r.metrics.latency(i), waitingMs: r.metrics.waiting(i) }])),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  process.stderr.write(`  ${r.events} events in ${round(secs, 2)} s (${Math.round(r.events / secs).toLocaleString('en-US')} events/s)\n`);
}
