import { parseArgs } from 'node:util';

export const PHASES = {
  alone: { label: 'alone', flood: false, classes: true },
  flood: { label: 'flood, classes', flood: true, classes: true },
  'alone-no-classes': { label: 'alone, no classes', flood: false, classes: false },
  'flood-no-classes': { label: 'flood, no classes', flood: true, classes: false },
} as const;
export type PhaseName = keyof typeof PHASES;

export interface CrowdingOptions {
  workers: number;
  /** Cores each worker offers (`baton worker --cores`). */
  cores: number;
  durationS: number;
  criticalRate: number;
  criticalMs: number;
  batchMs: number[];
  /** Batch calls kept outstanding during a flood, over all workers. */
  batchInflight: number;
  /** Each phase is measured in this many windows of durationS / rounds, alternating with the other phases of the same setting. */
  rounds: number;
  /** Seconds of flood before a flood phase's window opens. */
  rampS: number;
  /** Plot bin, s. */
  binS: number;
  /** Client-side limit on one critical call, ms. */
  timeoutMs: number;
  /** In run order: every phase with classes on, then (after one restart of the workers) those without. */
  phases: PhaseName[];
  /** Nice value for the load generator itself (undefined: leave it as started). */
  clientNice?: number;
  /** Run the whole experiment in a CPU cgroup of its own with this cpu.shares (undefined: where it was started). */
  cpuShares?: number;
  out?: string;
}

export const HELP = `baton bench crowding — the crowding experiment: critical latency alone, under a batch flood, and under the flood with price classes off

  --workers N          process workers to start (default 1)
  --cores C            cores each worker offers, \`baton worker --cores\` (default: all of this machine's)
  --duration S         measured seconds per phase (default 20)
  --critical-rate R    critical calls per second, open loop (default 40)
  --critical-ms MS     CPU each critical call spins (default 4)
  --batch-ms LIST      CPU each batch function spins, one function per value (default 50,100,200)
  --batch-inflight N   batch calls kept outstanding in a flood (default 4 × cores × workers)
  --rounds N           measure each phase in N windows of S/N seconds, alternating with the
                       other phases of the same setting (A B B A …), so drifting load from
                       elsewhere on the machine falls on every phase alike (default 1)
  --ramp S             seconds of flood before a flood phase is measured (default 2)
  --phases LIST        alone, flood, alone-no-classes, flood-no-classes (default alone,flood,flood-no-classes);
                       phases with classes run first, then the workers restart with --no-classes
  --bin S              plot bin width, s (default 1)
  --timeout S          a critical call with no answer after this long fails (default 10)
  --client-nice N      nice value for this load generator (e.g. -5; default: unchanged)
  --cpu-shares N       run everything (load generator, control plane, workers and their
                       sandboxes) in a CPU cgroup of its own with this weight, where a
                       normal process group has 1024, so other work on a shared machine
                       takes less from the experiment (cgroup v1, root; default: off)
  --out FILE           write the results as JSON, and the plot next to it (.svg)

Starts a control plane and N workers with real process sandboxes (node runners)
as child processes. Critical latency is measured here, from send to response,
failures included at their time to failure; only calls completed inside a
phase's window count. Batch functions are flooded by closed-loop clients.`;

function num(name: string, v: string, min: number, integer = false): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new RangeError(`--${name}: expected ${integer ? 'an integer' : 'a number'} ≥ ${min}, got "${v}"`);
  }
  return n;
}

/** Parse and check the command line; undefined when help was asked for. */
export function parseCrowdingArgs(argv: string[], machineCores: number): CrowdingOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '1' },
      cores: { type: 'string' },
      duration: { type: 'string', default: '20' },
      'critical-rate': { type: 'string', default: '40' },
      'critical-ms': { type: 'string', default: '4' },
      'batch-ms': { type: 'string', default: '50,100,200' },
      'batch-inflight': { type: 'string' },
      rounds: { type: 'string', default: '1' },
      ramp: { type: 'string', default: '2' },
      phases: { type: 'string', default: 'alone,flood,flood-no-classes' },
      bin: { type: 'string', default: '1' },
      timeout: { type: 'string', default: '10' },
      'client-nice': { type: 'string' },
      'cpu-shares': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const workers = num('workers', values.workers, 1, true);
  const cores = values.cores === undefined ? machineCores : num('cores', values.cores, 1, true);
  const batchMs = values['batch-ms'].split(',').map((v) => num('batch-ms', v, 1));
  const phases = values.phases.split(',').map((p) => p.trim());
  for (const p of phases) if (!(p in PHASES)) throw new RangeError(`--phases: unknown phase "${p}"; expected some of ${Object.keys(PHASES).join(', ')}`);
  if (new Set(phases).size !== phases.length) throw new RangeError(`--phases: a phase is named twice in "${values.phases}"`);
  const named = phases as PhaseName[];
  const o: CrowdingOptions = {
    workers,
    cores,
    durationS: num('duration', values.duration, 1),
    criticalRate: num('critical-rate', values['critical-rate'], 0.1),
    criticalMs: num('critical-ms', values['critical-ms'], 0.1),
    batchMs,
    batchInflight: values['batch-inflight'] === undefined ? 4 * cores * workers : num('batch-inflight', values['batch-inflight'], 1, true),
    rounds: num('rounds', values.rounds, 1, true),
    rampS: num('ramp', values.ramp, 0),
    binS: num('bin', values.bin, 0.1),
    timeoutMs: num('timeout', values.timeout, 0.1) * 1000,
    phases: [...named.filter((p) => PHASES[p].classes), ...named.filter((p) => !PHASES[p].classes)],
  };
  if (o.durationS / o.rounds < o.binS) throw new RangeError(`--rounds: windows of ${o.durationS / o.rounds} s are shorter than a plot bin (--bin ${o.binS})`);
  if (values['client-nice'] !== undefined) {
    const n = num('client-nice', values['client-nice'], -20, true);
    if (n > 19) throw new RangeError(`--client-nice: expected an integer from -20 to 19, got "${values['client-nice']}"`);
    o.clientNice = n;
  }
  if (values['cpu-shares'] !== undefined) {
    const n = num('cpu-shares', values['cpu-shares'], 2, true);
    if (n > 262_144) throw new RangeError(`--cpu-shares: expected an integer from 2 to 262144, got "${values['cpu-shares']}"`);
    o.cpuShares = n;
  }
  if (values.out !== undefined) o.out = values.out;
  return o;
}
