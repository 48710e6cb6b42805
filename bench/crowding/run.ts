import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, setPriority } from 'node:os';
import { LoadClient } from '../lib/load.js';
import { describeMachine } from '../lib/machine.js';
import { round } from '../lib/stats.js';
import { latencyBins, p99Ratios, summarizeBatch, summarizeCritical, type CallRecord, type WindowCalls } from './analysis.js';
import { CrowdingCluster, type NodeInfo } from './cluster.js';
import { CrowdingError } from './crowding-error.js';
import { OwnCpuGroup } from './cpu-group.js';
import { CliError } from '../../src/cli/client.js';
import { cpuBetween, mergeCpu, snapshotCpu, type CpuGroups, type CpuSnapshot, type CpuUse } from './cpu.js';
import { deployFunctions, planFunctions, type SpinFunction } from './functions.js';
import { HELP, parseCrowdingArgs, PHASES, type CrowdingOptions, type PhaseName } from './options.js';
import { BatchFlood, criticalLoad } from './phase.js';
import { crowdingSvg, type PlotPhase } from './plot.js';
import { formatReport, GOAL_RATIO, type CrowdingReport, type PhaseResult } from './report.js';

const WARM_UP_MS = 3000;

/** Set once the run is interrupted: the unwinding experiment has nothing more to say. */
let quiet = false;

function progress(line: string, final = false): void {
  if (quiet) return;
  if (process.stderr.isTTY) process.stderr.write(`\r${line.padEnd(110)}${final ? '\n' : ''}`);
  else process.stderr.write(`${line}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function preemptionsOf(nodes: readonly NodeInfo[]): number | undefined {
  if (nodes.length === 0) return undefined;
  let sum = 0;
  for (const n of nodes) {
    if (typeof n.preemptions !== 'number') return undefined;
    sum += n.preemptions;
  }
  return sum;
}

class Experiment {
  private readonly client: LoadClient;
  private readonly plan: { critical: SpinFunction; batch: SpinFunction[] };

  constructor(
    private readonly cluster: CrowdingCluster,
    private readonly o: CrowdingOptions,
  ) {
    this.client = new LoadClient(cluster.cp.url, cluster.cp.apiKey);
    this.plan = planFunctions(o);
  }

  get functions(): SpinFunction[] {
    return [this.plan.critical, ...this.plan.batch];
  }

  close(): void {
    this.client.close();
  }

  async deploy(): Promise<void> {
    await deployFunctions(this.cluster.cp, this.cluster.dir, this.functions);
  }

  /** (Re)start the workers, wait for every function's sandboxes, and run the whole load once unmeasured so no phase pays for cold paths. */
  async bringUp(classes: boolean, restart: boolean): Promise<void> {
    if (restart) {
      progress('stopping the workers to restart them without price classes');
      await this.cluster.stopWorkers();
    }
    progress(`starting ${this.o.workers} worker(s), ${this.o.cores} cores each, price classes ${classes ? 'on' : 'OFF (--no-classes)'}`);
    await this.cluster.startWorkers(classes);
    await this.cluster.waitForSandboxes(new Map(this.functions.map((f) => [`default/${f.name}`, f.sandboxes])), 90_000);
    progress('warming up: critical load and batch flood together, not measured');
    const flood = new BatchFlood(this.client, this.plan.batch.map((f) => f.name), this.o.batchInflight);
    flood.start();
    const warm = await criticalLoad(this.client, this.plan.critical.name, this.o.criticalRate, WARM_UP_MS, this.o.timeoutMs, () => this.cluster.failed);
    await flood.stop(120_000);
    const failed = [...warm.records, ...flood.records].filter((r) => !r.ok);
    if (failed.length > 0) throw new CrowdingError(`${failed.length} calls failed while warming up (first: HTTP ${failed[0]?.status} ${failed[0]?.error ?? ''}); the cluster is not healthy`);
    this.cluster.check();
  }

  private async cpuGroups(): Promise<CpuGroups> {
    const sandboxes = await this.cluster.sandboxes();
    const pids = (fns: readonly SpinFunction[]): number[] =>
      sandboxes.filter((s) => fns.some((f) => s.function === `default/${f.name}`) && s.pid !== undefined).map((s) => s.pid as number);
    return {
      controlPlane: this.cluster.controlPlanePid === undefined ? [] : [this.cluster.controlPlanePid],
      workers: this.cluster.workerPids,
      client: [process.pid],
      criticalSandboxes: pids([this.plan.critical]),
      batchSandboxes: pids(this.plan.batch),
    };
  }

  /** One measured window of a phase: the flood (if any) ramps up first, the critical load runs for the window, then everything drains. */
  async window(name: PhaseName, durationMs: number): Promise<WindowRun> {
    const def = PHASES[name];
    const o = this.o;
    const flood = def.flood ? new BatchFlood(this.client, this.plan.batch.map((f) => f.name), o.batchInflight) : undefined;
    if (flood !== undefined) {
      flood.start();
      await sleep(o.rampS * 1000);
    }
    const groups = await this.cpuGroups();
    const nodesBefore = await this.cluster.nodes();
    const before = snapshotCpu(groups, performance.now());
    let endTimer: NodeJS.Timeout | undefined;
    // the window closes on its own clock, whether or not the last critical calls have answered
    const atEnd = new Promise<{ cpu: CpuSnapshot; nodes: Promise<NodeInfo[] | undefined> }>((resolve) => {
      endTimer = setTimeout(() => resolve({ cpu: snapshotCpu(groups, performance.now()), nodes: this.cluster.nodes().catch(() => undefined) }), durationMs);
    });
    let crit: { start: number; records: CallRecord[] };
    let end: { cpu: CpuSnapshot; nodes: Promise<NodeInfo[] | undefined> };
    try {
      crit = await criticalLoad(this.client, this.plan.critical.name, o.criticalRate, durationMs, o.timeoutMs, () => this.cluster.failed, (rs) => {
        const failed = rs.filter((r) => !r.ok).length;
        progress(`${def.label}: critical answered ${rs.length}, failed ${failed}${flood === undefined ? '' : `; batch answered ${flood.records.length}`}`);
      });
      end = await atEnd;
    } finally {
      clearTimeout(endTimer);
      await flood?.stop(120_000);
    }
    this.cluster.check();
    const span = { start: crit.start, end: crit.start + durationMs };
    const pBefore = preemptionsOf(nodesBefore);
    const pAfter = preemptionsOf((await end.nodes) ?? []);
    const run: WindowRun = {
      name,
      critical: { span, records: crit.records },
      batch: flood === undefined ? null : { span, records: flood.records },
      cpu: cpuBetween(before, end.cpu),
      preemptions: pBefore === undefined || pAfter === undefined ? null : pAfter - pBefore,
    };
    const c = summarizeCritical([run.critical]);
    progress(`${def.label}: critical p50 ${c.e2eMs.p50} ms, p99 ${c.e2eMs.p99} ms, errors ${c.errors}${run.batch === null ? '' : `; batch ${summarizeBatch([run.batch]).throughputPerSec}/s`}`, true);
    return run;
  }
}

/** What one window measured, before phases are summarised. */
interface WindowRun {
  name: PhaseName;
  critical: WindowCalls;
  batch: WindowCalls | null;
  cpu: CpuUse;
  preemptions: number | null;
}

/** A phase from its windows; its plot bins start at `offsetS`, windows back to back. */
function phaseResult(name: PhaseName, runs: readonly WindowRun[], o: CrowdingOptions, offsetS: number): PhaseResult {
  const def = PHASES[name];
  const batch = runs.flatMap((r) => (r.batch === null ? [] : [r.batch]));
  const critical = summarizeCritical(runs.map((r) => r.critical));
  const batchSummary = batch.length === 0 ? null : summarizeBatch(batch);
  const sawTiming = batch.some((w) => w.records.some((r) => r.timing['preempt'] !== undefined));
  const windowS = o.durationS / o.rounds;
  return {
    name,
    label: def.label,
    classes: def.classes,
    flood: def.flood,
    durationS: o.durationS,
    windows: runs.length,
    critical,
    batch: batchSummary,
    cpu: mergeCpu(runs.map((r) => r.cpu)),
    preemptions: {
      fromNodes: runs.some((r) => r.preemptions === null) ? null : runs.reduce((s, r) => s + (r.preemptions ?? 0), 0),
      batchCallsPreempted: sawTiming && batchSummary !== null ? batchSummary.preemptedCalls : null,
    },
    bins: runs.flatMap((r, i) => latencyBins(r.critical, o.binS * 1000, offsetS + i * windowS)),
  };
}

export async function runCrowding(o: CrowdingOptions): Promise<CrowdingReport> {
  const loadAverageAtStart = loadavg().map((v) => round(v));
  progress('starting the control plane');
  const cluster = await CrowdingCluster.start(o.workers, o.cores);
  let exp: Experiment | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    // a second Ctrl-C leaves at once; the children get SIGKILL from cluster.close's own timer otherwise
    if (interrupted) process.exit(130);
    interrupted = true;
    quiet = true;
    process.stderr.write(`\n${signal}: stopping the load, the workers and the control plane\n`);
    cluster.abort(`interrupted by ${signal}`);
    exp?.close();
    void cluster.close().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    exp = new Experiment(cluster, o);
    await exp.deploy();
    const runs = new Map<PhaseName, WindowRun[]>(o.phases.map((p) => [p, []]));
    const windowMs = (o.durationS / o.rounds) * 1000;
    let restart = false;
    for (const classes of [true, false]) {
      const names = o.phases.filter((p) => PHASES[p].classes === classes);
      if (names.length === 0) continue;
      await exp.bringUp(classes, restart);
      restart = true;
      for (let round = 0; round < o.rounds; round++) {
        // A B B A …: a trend in the machine's other load falls on both phases alike
        for (const name of round % 2 === 0 ? names : [...names].reverse()) (runs.get(name) as WindowRun[]).push(await exp.window(name, windowMs));
      }
    }
    const phases = o.phases.map((name, i) => phaseResult(name, runs.get(name) ?? [], o, i * o.durationS));
    const ratios = p99Ratios(phases.map((p) => ({ name: p.name, flood: p.flood, classes: p.classes, p99: p.critical.e2eMs.p99 })));
    const withClasses = ratios.find((r) => r.phase === 'flood');
    return {
      benchmark: 'crowding',
      emulated: false,
      sandboxes: 'real processes: process runtime, node runners (stem cells), on this machine',
      machine: describeMachine(),
      loadAverageAtStart,
      config: { ...o, functions: exp.functions },
      phases,
      ratios,
      goal: { ratio: GOAL_RATIO, met: withClasses === undefined ? null : withClasses.ratio <= GOAL_RATIO },
      workerWarnings: { count: cluster.warnings.length, first: cluster.warnings.slice(0, 20) },
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    exp?.close();
    progress('stopping the workers and the control plane', true);
    await cluster.close();
  }
}

export async function runCrowdingCli(argv: string[]): Promise<void> {
  try {
    await crowdingCli(argv);
  } catch (e) {
    // what went wrong with the run (not with this code) is said in one line, without a stack
    const badArgs = e instanceof TypeError && String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    if (e instanceof CrowdingError || e instanceof RangeError || badArgs) throw new CliError(`bench crowding: ${(e as Error).message}`);
    throw e;
  }
}

async function crowdingCli(argv: string[]): Promise<void> {
  const o = parseCrowdingArgs(argv, availableParallelism());
  if (o === undefined) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (o.clientNice !== undefined) {
    try {
      setPriority(o.clientNice);
    } catch (e) {
      throw new CrowdingError(`--client-nice ${o.clientNice}: cannot set this process's priority (${(e as Error).message}); negative values need root or CAP_SYS_NICE`, { cause: e });
    }
  }
  const group = o.cpuShares === undefined ? undefined : OwnCpuGroup.enter(o.cpuShares);
  const leave = (): void => group?.leave();
  process.once('exit', leave);
  let report: CrowdingReport;
  try {
    report = await runCrowding(o);
  } finally {
    process.off('exit', leave);
    leave();
  }
  const m = report.machine;
  process.stdout.write(`\ncrowding, real process sandboxes, on ${String(m['cpu'])} × ${String(m['cores'])}, ${String(m['os'])}, node ${String(m['node'])}\n${formatReport(report)}\n`);
  if (o.out !== undefined) {
    writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
    const svgPath = `${o.out.replace(/\.json$/, '')}.svg`;
    const plotPhases: PlotPhase[] = report.phases.map((p, i) => ({ label: p.label, offsetS: i * o.durationS, durationS: o.durationS, bins: p.bins, p99: p.critical.e2eMs.p99 }));
    const title = `Critical latency, ${o.criticalRate}/s × ${o.criticalMs} ms CPU; ${o.workers} worker(s) × ${o.cores} cores; real process sandboxes${o.cpuShares === undefined ? '' : `; cpu.shares ${o.cpuShares}`}`;
    writeFileSync(svgPath, crowdingSvg(title, plotPhases, o.binS));
    process.stdout.write(`results written to ${o.out} and ${svgPath}\n`);
  }
}
