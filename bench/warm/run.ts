import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LoadClient, openLoop, type Sample } from '../lib/load.js';
import { describeMachine } from '../lib/machine.js';
import { apiJson, processCpuSeconds, startControlPlaneProcess, stopProcess, waitForNodes, type Started } from '../lib/processes.js';
import { summary } from '../lib/stats.js';

const FLEET = fileURLToPath(new URL('../churn/fleet.js', import.meta.url));

const HELP = `baton bench warm — warm-path throughput and control-plane overhead

  --connections N   concurrent callers, each sending its next call when the last returns (default 64)
  --duration S      seconds of load after a 2 s warm-up (default 10)
  --workers N       emulated workers (default 4)
  --out FILE        write the results as JSON
  --rates r1,r2     open-loop phases at these calls per second (default 2000,5000,10000; '' for none)
  --floor-rate R    also send GET /healthz at R/s (default 5000; 0 for none): the CPU the
                    control plane spends on a bare HTTP exchange, the floor under a call
  --async           send async calls (POST /async-function/warm): latency is that of the
                    202, which is sent once the call is durably stored (SQLite, WAL)
  --profile DIR     write a CPU profile of the control plane (.cpuprofile) into DIR
  --scheduler-threads N  the control plane's scheduler cores (default: its own default,
                    CPU cores - 1, at least 1)

Functions are pre-scaled (scale.min) on emulated workers with 0 ms execution,
so every call is warm and the measured time is the platform's own: the client
sees end to end, and Server-Timing's total is the control plane's share
(arrival to response, including the worker round trip). Emulated sandboxes.
A closed-loop phase (--connections callers, each sending its next call when the last
returns; 0 for none) finds the throughput; open-loop phases send at fixed rates, so
the overhead is measured at the stated load. Each phase reports the control plane's
own CPU per call (from its process CPU time, all threads), which depends far less
on how busy the machine is than latency does; failures count in the latencies.`;

interface WarmPhase {
  /** floor: GET /healthz, no worker involved (what one HTTP exchange costs the control plane). */
  mode: 'closed' | 'open' | 'floor';
  /** Offered calls per second (open loop), or the number of connections (closed loop). */
  offered: number;
  sent: number;
  requestsPerSec: number;
  errors: number;
  e2eMs: ReturnType<typeof summary>;
  /** Server-Timing total of the answered calls; null when the answers carry none (the 202 of an async call). */
  controlPlaneMs: ReturnType<typeof summary> | null;
  /** The control plane's own CPU (all threads) per answered call, µs. */
  cpuUsPerCall: number;
  cpCores: number;
}

async function measure(cp: Started, c: LoadClient, mode: WarmPhase['mode'], offered: number, durationS: number, path = '/function/warm'): Promise<WarmPhase> {
  const samples: Sample[] = [];
  const cpu0 = await processCpuSeconds(cp);
  const t0 = performance.now();
  let sent = 0;
  if (mode === 'floor') {
    sent = await openLoop(offered, durationS * 1000, () => c.post('/healthz', '', (s) => samples.push(s), { timeoutMs: 10_000, method: 'GET' }));
  } else if (mode === 'open') {
    sent = await openLoop(offered, durationS * 1000, () => c.post(path, '', (s) => samples.push(s), { timeoutMs: 10_000 }));
  } else {
    let running = true;
    const loop = (): void => {
      if (!running) return;
      sent++;
      c.post(path, '', (s) => {
        samples.push(s);
        loop();
      }, { timeoutMs: 10_000 });
    };
    for (let i = 0; i < offered; i++) loop();
    await new Promise((r) => setTimeout(r, durationS * 1000));
    running = false;
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu1 = await processCpuSeconds(cp);
  const inWindow = samples.length;
  const deadline = performance.now() + 12_000;
  while (samples.length < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const ok = samples.filter((s) => s.ok);
  const inCp = ok.flatMap((s) => (s.timing['total'] === undefined ? [] : [s.timing['total']]));
  return {
    mode,
    offered,
    sent,
    requestsPerSec: Math.round(ok.filter((_, i) => i < inWindow).length / secs),
    errors: sent - ok.length,
    // every call, failures included at their time to failure
    e2eMs: summary(samples.map((s) => s.e2eMs)),
    controlPlaneMs: inCp.length === 0 ? null : summary(inCp),
    cpuUsPerCall: inWindow === 0 ? 0 : Math.round(((cpu1 - cpu0) * 1e6) / inWindow),
    cpCores: Math.round(((cpu1 - cpu0) / secs) * 100) / 100,
  };
}

export async function runWarmCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '64' },
      rates: { type: 'string', default: '2000,5000,10000' },
      'floor-rate': { type: 'string', default: '5000' },
      async: { type: 'boolean' },
      duration: { type: 'string', default: '10' },
      workers: { type: 'string', default: '4' },
      out: { type: 'string' },
      profile: { type: 'string' },
      'scheduler-threads': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const connections = Number(values.connections);
  const durationS = Number(values.duration);
  const workers = Number(values.workers);
  const floorRate = Number(values['floor-rate']);
  const schedulerThreads = values['scheduler-threads'] === undefined ? Math.max(1, availableParallelism() - 1) : Number(values['scheduler-threads']);
  if (!Number.isInteger(schedulerThreads) || schedulerThreads < 1) throw new RangeError(`--scheduler-threads: expected a positive integer, got "${values['scheduler-threads']}"`);
  const rates = values.rates === '' ? [] : values.rates.split(',').map((r) => Number(r.trim()));
  for (const [k, v] of Object.entries({ connections, duration: durationS, workers, 'floor-rate': floorRate })) if (!Number.isInteger(v) || v < 0 || (k !== 'connections' && k !== 'floor-rate' && v < 1)) throw new RangeError(`--${k}: expected a positive integer`);
  for (const r of rates) if (!Number.isFinite(r) || r < 1) throw new RangeError(`--rates: expected positive numbers, got "${values.rates}"`);
  const dir = mkdtempSync(join(tmpdir(), 'baton-warm-'));
  let cp: Started | undefined;
  let fleet: ChildProcess | undefined;
  let client: LoadClient | undefined;
  try {
    cp = await startControlPlaneProcess(join(dir, 'cp'), ['--scheduler-threads', String(schedulerThreads)], values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values.profile]);
    fleet = spawn(process.execPath, [FLEET, cp.url.replace(/^http/, 'ws'), String(workers), join(dir, 'fleet'), '0', '0'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: cp.joinToken } });
    await waitForNodes(cp, workers, 30_000);
    await apiJson(cp, 'PUT', '/v1/namespaces/default/functions/warm', { spec: { runtime: 'http', command: ['emulated'], concurrency: 64, scale: { min: Math.max(workers, Math.ceil(Math.max(connections, 64) / 64)), max: 1000, keepAlive: '10m' } } });
    await new Promise((r) => setTimeout(r, 1500)); // let min scale come up
    client = new LoadClient(cp.url, cp.apiKey);
    // warm up the process (JIT) before anything counts
    await measure(cp, client, 'open', 1000, 2);
    const phases: WarmPhase[] = [];
    const path = values.async === true ? '/async-function/warm' : '/function/warm';
    if (connections > 0) phases.push(await measure(cp, client, 'closed', connections, durationS, path));
    for (const r of rates) phases.push(await measure(cp, client, 'open', r, durationS, path));
    if (floorRate > 0) phases.push(await measure(cp, client, 'floor', floorRate, durationS));
    const report = { emulated: true, schedulerThreads, machine: describeMachine(), config: { connections, rates, floorRate, durationS, workers, async: values.async === true }, phases };
    if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${values.async === true ? 'async accept path (202 after the durable write; the calls then run on ' : 'warm path ('}EMULATED sandboxes, 0 ms execution), ${workers} workers, ${schedulerThreads} scheduler thread(s), on ${String(report.machine['cpu'])} × ${String(report.machine['cores'])}\n`);
    process.stdout.write('| load | answered/s | errors | e2e p50 ms | e2e p99 ms | in CP p50 ms | in CP p99 ms | CP µs/call | CP cores |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n');
    for (const p of phases) {
      const label = p.mode === 'open' ? `open loop ${p.offered}/s` : p.mode === 'floor' ? `floor: GET /healthz ${p.offered}/s` : `closed loop, ${p.offered} connections`;
      process.stdout.write(`| ${label} | ${p.requestsPerSec} | ${p.errors} | ${p.e2eMs.p50} | ${p.e2eMs.p99} | ${p.controlPlaneMs?.p50 ?? '–'} | ${p.controlPlaneMs?.p99 ?? '–'} | ${p.cpuUsPerCall} | ${p.cpCores} |\n`);
    }
  } finally {
    client?.close();
    await stopProcess(fleet);
    await stopProcess(cp?.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
