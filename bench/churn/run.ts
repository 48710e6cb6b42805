import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LoadClient, openLoop, type Sample } from '../lib/load.js';
import { describeMachine } from '../lib/machine.js';
import { apiJson, childCpuSeconds, metricValues, ownCpuSeconds, processCpuSeconds, startControlPlaneProcess, stopProcess, threadCpuSeconds, waitForNodes, type Started } from '../lib/processes.js';
import { lineChart } from '../../src/sim/svg-plot.js';
import { percentile, round } from '../lib/stats.js';

const FLEET = fileURLToPath(new URL('./fleet.js', import.meta.url));

export interface ChurnOptions {
  workers: number;
  rates: number[];
  durationS: number;
  cooldownS: number;
  createMs: number;
  execMs: number;
  out?: string;
  /** Write a V8 CPU profile of the control plane into this directory. */
  profileDir?: string;
  /** Scheduler cores of the control plane (its --scheduler-threads). */
  schedulerThreads: number;
}

export interface ChurnResult {
  rate: number;
  functions: number;
  sent: number;
  /**
   * Kept for comparison with older results: creations requested per second of
   * load. It overstates throughput (a request is not a completed creation).
   */
  achievedPerSec: number;
  /** Creations the workers confirmed ready inside the load window, per second of the window. */
  completedPerSec: number;
  /** completedPerSec kept up with the offered rate (≥ 95 %) and no backlog built up. */
  sustained: boolean;
  /** Calls sent but not answered when the window closed. */
  backlogAtEnd: number;
  coldPerSec: number;
  coldFraction: number;
  /** End to end, every call, failures included (a failure counts at its time to failure). */
  e2eMs: { p50: number; p99: number };
  /** Control-plane time from the request's arrival to the frame written to the worker (Server-Timing sched). */
  schedMs: { p50: number; p99: number };
  errors: number;
  /** Failures by HTTP status (0: no response). */
  errorsByStatus: Record<string, number>;
  /** The control plane's own CPU (all threads) over the window, per completed creation. */
  cpuUsPerCreation: number;
  /** The control plane's CPU over the window as cores. */
  cpCores: number;
  /** The control plane's CPU over the window by thread, as cores: its main thread, and its scheduler cores together. */
  mainCores: number;
  schedulerCores: number;
  /** Cores the emulated fleet and this load generator used in the window: when they, not the control plane, are saturated, the harness is the limit. */
  fleetCores: number;
  loadGenCores: number;
}

const HELP = `baton bench churn — sandbox churn, the Dirigent cold-start sweep, against emulated workers

  --workers N        emulated workers, each with its own WebSocket (default 200)
  --rates r1,r2,...  target cold starts per second (default 200,500,1000)
  --duration S       seconds of load per rate (default 10)
  --cooldown S       each function is invoked once per cooldown (default 4); functions = rate × cooldown
  --create-ms MS     emulated sandbox creation time (default 0)
  --exec-ms MS       emulated execution time (default 0)
  --out FILE         write the results as JSON
  --profile DIR      write a CPU profile of the control plane (.cpuprofile) into DIR
  --scheduler-threads N  the control plane's scheduler cores (default: its own default, CPU cores - 1, at least 1)
  --plot A.json,B.json --out F.svg   compare saved sweeps: writes F-completed.svg and F-p99.svg (no run)

Every function has max scale 1 and a keep-alive shorter than the cooldown, so every
invocation is a cold start. Starts its own control plane and fleet as child processes.
Results are labelled emulated: no real sandbox is created.

Counted honestly: a creation counts only when its worker confirmed the sandbox ready
inside the load window (completed/s = those ÷ the window); a rate is marked not
sustained when completions fall below 95 % of it or a backlog builds. End-to-end
latency includes failed calls (at their time to failure); scheduling latency runs
from the request's arrival at the control plane to the frame written to the worker.
The control plane's own CPU per completed creation is reported too: it depends far
less on how busy the machine is than latency does. With --out, an SVG plot of the
sweep is written next to the JSON.`;

export function parseChurnArgs(argv: string[]): ChurnOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '200' },
      rates: { type: 'string', default: '200,500,1000' },
      duration: { type: 'string', default: '10' },
      cooldown: { type: 'string', default: '4' },
      'create-ms': { type: 'string', default: '0' },
      'exec-ms': { type: 'string', default: '0' },
      out: { type: 'string' },
      profile: { type: 'string' },
      'scheduler-threads': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const num = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new RangeError(`--${name}: expected a number ≥ ${min}, got "${v}"`);
    return n;
  };
  const rates = values.rates.split(',').map((r) => num('rates', r.trim(), 1));
  const o: ChurnOptions = {
    workers: Math.floor(num('workers', values.workers, 1)),
    rates,
    durationS: num('duration', values.duration, 1),
    cooldownS: num('cooldown', values.cooldown, 1),
    createMs: num('create-ms', values['create-ms'], 0),
    execMs: num('exec-ms', values['exec-ms'], 0),
    schedulerThreads: values['scheduler-threads'] === undefined ? Math.max(1, availableParallelism() - 1) : Math.floor(num('scheduler-threads', values['scheduler-threads'], 1)),
  };
  if (values.out !== undefined) o.out = values.out;
  if (values.profile !== undefined) o.profileDir = values.profile;
  return o;
}

function progress(line: string, final = false): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${line.padEnd(100)}${final ? '\n' : ''}`);
  else process.stderr.write(`${line}\n`);
}

async function deployFunctions(cp: Started, prefix: string, count: number, cooldownS: number): Promise<string[]> {
  const keepAlive = `${Math.max(0.5, cooldownS * 0.4)}s`;
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${i}`;
    names.push(name);
    await apiJson(cp, 'PUT', `/v1/namespaces/default/functions/${name}`, {
      spec: { runtime: 'http', command: ['emulated'], concurrency: 1, scale: { min: 0, max: 1, keepAlive, stableWindow: keepAlive, panicWindow: '1s' }, timeout: '30s' },
    });
    if (i % 500 === 499) progress(`deploying ${prefix}: ${i + 1}/${count}`);
  }
  return names;
}

async function runRate(cp: Started, fleet: ChildProcess, client: LoadClient, o: ChurnOptions, rate: number): Promise<ChurnResult> {
  const fnCount = Math.ceil(rate * o.cooldownS);
  const names = await deployFunctions(cp, `r${rate}`, fnCount, o.cooldownS);
  const samples: Sample[] = [];
  const [createdBefore = 0, readyBefore = 0] = await metricValues(cp, ['baton_sandbox_creations_total', 'baton_sandbox_ready_total']);
  const busyBefore = await threadCpuSeconds(cp);
  const cpuBefore = await processCpuSeconds(cp);
  const fleetBefore = childCpuSeconds(fleet) ?? 0;
  const genBefore = ownCpuSeconds();
  const t0 = performance.now();
  let lastPrint = 0;
  const sent = await openLoop(
    rate,
    o.durationS * 1000,
    (k) => client.post(`/function/${names[k % fnCount] as string}`, '', (s) => samples.push(s), { timeoutMs: 30_000 }),
    (n) => {
      const now = performance.now();
      if (now - lastPrint > 1000) {
        lastPrint = now;
        progress(`rate ${rate}/s  ${((now - t0) / 1000).toFixed(0)}/${o.durationS}s  sent ${n}  done ${samples.length}  errors ${samples.filter((s) => !s.ok).length}  in flight ${client.inflight}`);
      }
    },
  );
  // the window closes when the last call of it was sent: what completed by now counts, nothing after
  const windowMs = performance.now() - t0;
  const cpuAfter = await processCpuSeconds(cp);
  const busyAfter = await threadCpuSeconds(cp);
  const fleetAfter = childCpuSeconds(fleet) ?? 0;
  const genAfter = ownCpuSeconds();
  const [createdAfter = 0, readyAfter = 0] = await metricValues(cp, ['baton_sandbox_creations_total', 'baton_sandbox_ready_total']);
  const answeredInWindow = samples.length;
  // latency of every call sent in the window, however long it takes (up to the client timeout)
  const drainDeadline = performance.now() + 35_000;
  while (samples.length < sent && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 20));
  const ok = samples.filter((s) => s.ok);
  const failed = samples.filter((s) => !s.ok);
  const errorsByStatus: Record<string, number> = {};
  for (const f of failed) errorsByStatus[String(f.status)] = (errorsByStatus[String(f.status)] ?? 0) + 1;
  const unanswered = sent - samples.length;
  if (unanswered > 0) errorsByStatus['unanswered'] = unanswered;
  const cold = ok.filter((s) => (s.timing['cold'] ?? 0) > 0);
  const completed = readyAfter - readyBefore;
  const windowS = windowMs / 1000;
  const withSched = samples.filter((s) => s.timing['sched'] !== undefined);
  const completedPerSec = round(completed / windowS, 1);
  const backlogAtEnd = sent - answeredInWindow;
  const result: ChurnResult = {
    rate,
    functions: fnCount,
    sent,
    achievedPerSec: round((createdAfter - createdBefore) / windowS, 1),
    completedPerSec,
    sustained: completedPerSec >= 0.95 * rate && backlogAtEnd <= Math.max(10, rate * 0.2),
    backlogAtEnd,
    coldPerSec: round(cold.length / windowS, 1),
    coldFraction: round(ok.length === 0 ? 0 : cold.length / ok.length, 3),
    e2eMs: { p50: round(percentile(samples.map((s) => s.e2eMs), 50)), p99: round(percentile(samples.map((s) => s.e2eMs), 99)) },
    schedMs: { p50: round(percentile(withSched.map((s) => s.timing['sched'] ?? 0), 50), 3), p99: round(percentile(withSched.map((s) => s.timing['sched'] ?? 0), 99), 3) },
    errors: failed.length + unanswered,
    errorsByStatus,
    cpuUsPerCreation: completed === 0 ? 0 : round(((cpuAfter - cpuBefore) * 1e6) / completed, 1),
    cpCores: round((cpuAfter - cpuBefore) / windowS, 2),
    mainCores: round((busyAfter.main - busyBefore.main) / windowS, 2),
    schedulerCores: round((busyAfter.cores - busyBefore.cores) / windowS, 2),
    fleetCores: round((fleetAfter - fleetBefore) / windowS, 2),
    loadGenCores: round((genAfter - genBefore) / windowS, 2),
  };
  progress(
    `rate ${rate}/s done: ${result.completedPerSec} creations/s completed in the window${result.sustained ? '' : ' (NOT sustained)'}, e2e p99 ${result.e2eMs.p99} ms, sched p99 ${result.schedMs.p99} ms, errors ${result.errors}, ${result.cpuUsPerCreation} µs CPU/creation`,
    true,
  );
  // let this rate's sandboxes scale to zero before the next one
  await new Promise((r) => setTimeout(r, o.cooldownS * 1000));
  return result;
}

/**
 * Several saved sweeps in one plot (`baton bench churn --plot A.json,B.json --out F.svg`):
 * completed creations/s and e2e p99 against the offered rate, one line per sweep,
 * labelled by its file's name (its scheduler threads in brackets).
 */
export function comparePlot(runs: readonly { label: string; results: readonly ChurnResult[] }[], title: string): { completed: string; latency: string } {
  return {
    completed: lineChart({
      title: `${title}: creations completed in the window`,
      xLabel: 'offered cold starts / s',
      yLabel: 'completed / s',
      series: [{ name: 'offered', points: runs[0]?.results.map((r): [number, number] => [r.rate, r.rate]) ?? [], dashed: true }, ...runs.map((run) => ({ name: run.label, points: run.results.map((r): [number, number] => [r.rate, r.completedPerSec]) }))],
    }),
    latency: lineChart({
      title: `${title}: e2e p99 (failures included)`,
      xLabel: 'offered cold starts / s',
      yLabel: 'latency (ms, log)',
      logY: true,
      series: runs.map((run) => ({ name: run.label, points: run.results.map((r): [number, number] => [r.rate, Math.max(0.01, r.e2eMs.p99)]) })),
    }),
  };
}

function plotSaved(files: string[], out: string): void {
  const runs = files.map((f) => {
    const r = JSON.parse(readFileSync(f, 'utf8')) as { schedulerThreads?: number; results: ChurnResult[] };
    return { label: `${basename(f).replace(/\.json$/, '')} (${r.schedulerThreads ?? 1})`, results: r.results };
  });
  const plots = comparePlot(runs, 'sandbox churn (emulated sandboxes)');
  const stem = out.replace(/\.svg$/, '');
  writeFileSync(`${stem}-completed.svg`, plots.completed);
  writeFileSync(`${stem}-p99.svg`, plots.latency);
  process.stdout.write(`plots written to ${stem}-completed.svg and ${stem}-p99.svg\n`);
}

/** Latency against offered rate, like Dirigent's cold-start sweep. */
export function sweepPlot(results: readonly ChurnResult[], title: string): string {
  return lineChart({
    title,
    xLabel: 'offered cold starts / s',
    yLabel: 'latency (ms, log)',
    logY: true,
    series: [
      { name: 'e2e p50', points: results.map((r) => [r.rate, Math.max(0.01, r.e2eMs.p50)]) },
      { name: 'e2e p99', points: results.map((r) => [r.rate, Math.max(0.01, r.e2eMs.p99)]) },
      { name: 'sched p99', points: results.map((r) => [r.rate, Math.max(0.01, r.schedMs.p99)]) },
    ],
  });
}

export function formatTable(results: ChurnResult[]): string {
  const head = ['offered/s', 'completed/s', 'sustained', 'cold', 'e2e p50 ms', 'e2e p99 ms', 'sched p50 ms', 'sched p99 ms', 'errors', 'CP µs/creation', 'CP cores', 'main', 'sched. cores', 'fleet cores', 'load-gen cores'];
  const rows = results.map((r) => [r.rate, r.completedPerSec, r.sustained ? 'yes' : 'NO', `${Math.round(r.coldFraction * 100)}%`, r.e2eMs.p50, r.e2eMs.p99, r.schedMs.p50, r.schedMs.p99, r.errors, r.cpuUsPerCreation, r.cpCores, r.mainCores, r.schedulerCores, r.fleetCores, r.loadGenCores].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export async function runChurnBench(o: ChurnOptions): Promise<{ emulated: true; schedulerThreads: number; machine: Record<string, string | number>; config: ChurnOptions; results: ChurnResult[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-churn-'));
  let cp: Started | undefined;
  let fleet: ChildProcess | undefined;
  let client: LoadClient | undefined;
  const cleanup = async (): Promise<void> => {
    client?.close();
    await stopProcess(fleet);
    await stopProcess(cp?.proc);
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (): void => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  try {
    const nodeArgs = o.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profileDir];
    cp = await startControlPlaneProcess(join(dir, 'cp'), ['--autoscaler-tick', '250ms', '--max-queue', '100000', '--scheduler-threads', String(o.schedulerThreads)], nodeArgs);
    fleet = spawn(process.execPath, [FLEET, cp.url.replace(/^http/, 'ws'), String(o.workers), join(dir, 'fleet'), String(o.createMs), String(o.execMs)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: cp.joinToken } });
    progress(`waiting for ${o.workers} emulated workers to join`);
    await waitForNodes(cp, o.workers, 60_000);
    client = new LoadClient(cp.url, cp.apiKey);
    const results: ChurnResult[] = [];
    for (const rate of o.rates) results.push(await runRate(cp, fleet, client, o, rate));
    const report = { emulated: true as const, schedulerThreads: o.schedulerThreads, machine: describeMachine(), config: o, results };
    if (o.out !== undefined) {
      writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
      writeFileSync(o.out.replace(/\.json$/, '') + '.svg', sweepPlot(results, `sandbox churn, ${o.workers} emulated workers, ${o.schedulerThreads} scheduler thread${o.schedulerThreads === 1 ? '' : 's'}`));
    }
    return report;
  } finally {
    process.off('SIGINT', onSignal);
    await cleanup();
  }
}

export async function runChurnCli(argv: string[]): Promise<void> {
  const plot = argv.indexOf('--plot');
  if (plot !== -1) {
    const files = (argv[plot + 1] ?? '').split(',').filter((f) => f !== '');
    const outAt = argv.indexOf('--out');
    const out = outAt === -1 ? undefined : argv[outAt + 1];
    if (files.length === 0 || out === undefined) throw new RangeError('--plot A.json,B.json --out FILE.svg: give the saved sweeps to compare and where to write the plots');
    plotSaved(files, out);
    return;
  }
  const o = parseChurnArgs(argv);
  if (o === undefined) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const report = await runChurnBench(o);
  const m = report.machine;
  process.stdout.write(`\nsandbox churn (EMULATED sandboxes), ${o.workers} workers, ${o.schedulerThreads} scheduler thread(s), ${o.durationS}s per rate, on ${String(m['cpu'])} × ${String(m['cores'])}, node ${String(m['node'])}\n`);
  process.stdout.write(`${formatTable(report.results)}\n`);
  if (o.out !== undefined) process.stdout.write(`results written to ${o.out}\n`);
}
