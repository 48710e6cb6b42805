import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LoadClient, type Sample } from '../lib/load.js';
import { describeMachine } from '../lib/machine.js';
import { apiJson, startControlPlaneProcess, stopProcess, waitForNodes, type Started } from '../lib/processes.js';
import { summary } from '../lib/stats.js';

const FLEET = fileURLToPath(new URL('../churn/fleet.js', import.meta.url));

const HELP = `baton bench warm — warm-path throughput and control-plane overhead

  --connections N   concurrent callers, each sending its next call when the last returns (default 64)
  --duration S      seconds of load after a 2 s warm-up (default 10)
  --workers N       emulated workers (default 4)
  --out FILE        write the results as JSON
  --profile DIR     write a CPU profile of the control plane (.cpuprofile) into DIR

Functions are pre-scaled (scale.min) on emulated workers with 0 ms execution,
so every call is warm and the measured time is the platform's own: the client
sees end to end, and Server-Timing's total is the control plane's share
(arrival to response, including the worker round trip). Emulated sandboxes.`;

export async function runWarmCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { connections: { type: 'string', default: '64' }, duration: { type: 'string', default: '10' }, workers: { type: 'string', default: '4' }, out: { type: 'string' }, profile: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const connections = Number(values.connections);
  const durationS = Number(values.duration);
  const workers = Number(values.workers);
  for (const [k, v] of Object.entries({ connections, duration: durationS, workers })) if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${k}: expected a positive integer`);
  const dir = mkdtempSync(join(tmpdir(), 'baton-warm-'));
  let cp: Started | undefined;
  let fleet: ChildProcess | undefined;
  let client: LoadClient | undefined;
  try {
    cp = await startControlPlaneProcess(join(dir, 'cp'), [], values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values.profile]);
    fleet = spawn(process.execPath, [FLEET, cp.url.replace(/^http/, 'ws'), String(workers), join(dir, 'fleet'), '0', '0'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: cp.joinToken } });
    await waitForNodes(cp, workers, 30_000);
    await apiJson(cp, 'PUT', '/v1/namespaces/default/functions/warm', { spec: { runtime: 'http', command: ['emulated'], concurrency: 64, scale: { min: Math.max(workers, Math.ceil(connections / 64)), max: 1000, keepAlive: '10m' } } });
    await new Promise((r) => setTimeout(r, 1500)); // let min scale come up
    client = new LoadClient(cp.url, cp.apiKey);
    const c = client;
    const samples: Sample[] = [];
    let recording = false;
    let running = true;
    const loop = (): void => {
      if (!running) return;
      c.post('/function/warm', '', (s) => {
        if (recording) samples.push(s);
        loop();
      });
    };
    for (let i = 0; i < connections; i++) loop();
    await new Promise((r) => setTimeout(r, 2000));
    recording = true;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, durationS * 1000));
    recording = false;
    const secs = (performance.now() - t0) / 1000;
    running = false;
    const ok = samples.filter((s) => s.ok);
    const report = {
      emulated: true,
      machine: describeMachine(),
      config: { connections, durationS, workers },
      requestsPerSec: Math.round(ok.length / secs),
      errors: samples.length - ok.length,
      e2eMs: summary(ok.map((s) => s.e2eMs)),
      controlPlaneMs: summary(ok.map((s) => s.timing['total'] ?? 0)),
    };
    if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(
      `warm path (EMULATED sandboxes, 0 ms execution), ${connections} connections, ${workers} workers, on ${String(report.machine['cpu'])} × ${String(report.machine['cores'])}\n` +
        `${report.requestsPerSec} req/s, ${report.errors} errors\n` +
        `end to end p50 ${report.e2eMs.p50} ms, p99 ${report.e2eMs.p99} ms; inside the control plane (Server-Timing total) p50 ${report.controlPlaneMs.p50} ms, p99 ${report.controlPlaneMs.p99} ms\n`,
    );
  } finally {
    client?.close();
    await stopProcess(fleet);
    await stopProcess(cp?.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
