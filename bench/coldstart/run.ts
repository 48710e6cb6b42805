import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packDirectory } from '../../src/common/bundle.js';
import { parseServerTiming } from '../lib/load.js';
import { describeMachine } from '../lib/machine.js';
import { apiJson, BIN, startControlPlaneProcess, stopProcess, waitForNodes, type Started } from '../lib/processes.js';
import { summary } from '../lib/stats.js';

const HELP = `baton bench coldstart — real cold starts of node functions, end to end

  --runs N       distinct functions, each invoked once cold and once warm (default 50)
  --gap MS       pause between cold calls, so stem cells refill (default 100)
  --out FILE     write the results as JSON

Starts a control plane and one real process worker (stem-cell node runners) as
child processes and measures POST /function/{fn} from this process.`;

interface Measured {
  e2e: number[];
  cold: number[];
  exec: number[];
}

async function invoke(cp: Started, name: string): Promise<{ e2eMs: number; timing: Record<string, number> }> {
  const t0 = performance.now();
  const res = await fetch(`${cp.url}/function/${name}`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}` }, body: 'x' });
  await res.arrayBuffer();
  const e2eMs = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status}`);
  return { e2eMs, timing: parseServerTiming(res.headers.get('server-timing') ?? undefined) };
}

export async function runColdStartCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { runs: { type: 'string', default: '50' }, gap: { type: 'string', default: '100' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const runs = Number(values.runs);
  const gap = Number(values.gap);
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`--runs: expected a positive integer, got "${values.runs}"`);
  const dir = mkdtempSync(join(tmpdir(), 'baton-coldstart-'));
  let cp: Started | undefined;
  let worker: ChildProcess | undefined;
  try {
    cp = await startControlPlaneProcess(join(dir, 'cp'));
    worker = spawn(process.execPath, [BIN, 'worker', '--control-plane', cp.url.replace(/^http/, 'ws'), '--runtime', 'process', '--state-dir', join(dir, 'worker'), '--log-level', 'error'], {
      stdio: 'inherit',
      env: { ...process.env, BATON_JOIN_TOKEN: cp.joinToken },
    });
    await waitForNodes(cp, 1, 20_000);
    const cold: Measured = { e2e: [], cold: [], exec: [] };
    const warm: Measured = { e2e: [], cold: [], exec: [] };
    for (let i = 0; i < runs; i++) {
      const fnDir = join(dir, `fn-${i}`);
      mkdirSync(fnDir);
      writeFileSync(join(fnDir, 'index.js'), `export default { fetch() { return new Response('ok ${i}'); } };\n`);
      const bundle = Buffer.from(await packDirectory(fnDir)).toString('base64');
      await apiJson(cp, 'PUT', `/v1/namespaces/default/functions/cs-${i}`, { spec: { runtime: 'node', handler: 'index.js', scale: { max: 1, keepAlive: '60s' } }, bundle });
    }
    for (let i = 0; i < runs; i++) {
      const c = await invoke(cp, `cs-${i}`);
      if ((c.timing['cold'] ?? 0) === 0) throw new Error(`cs-${i}: first call was not a cold start`);
      cold.e2e.push(c.e2eMs);
      cold.cold.push(c.timing['cold'] ?? 0);
      cold.exec.push(c.timing['exec'] ?? 0);
      const w = await invoke(cp, `cs-${i}`);
      warm.e2e.push(w.e2eMs);
      warm.cold.push(w.timing['cold'] ?? 0);
      warm.exec.push(w.timing['exec'] ?? 0);
      if (process.stderr.isTTY) process.stderr.write(`\r${i + 1}/${runs}`);
      await new Promise((r) => setTimeout(r, gap));
    }
    const report = {
      emulated: false,
      machine: describeMachine(),
      config: { runs, gapMs: gap },
      cold: { e2eMs: summary(cold.e2e), sandboxCreateMs: summary(cold.cold), execMs: summary(cold.exec) },
      warm: { e2eMs: summary(warm.e2e), execMs: summary(warm.exec) },
    };
    if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(
      `\nnode runtime, real processes with stem cells, ${runs} functions, on ${String(report.machine['cpu'])} × ${String(report.machine['cores'])}\n` +
        `cold: e2e p50 ${report.cold.e2eMs.p50} ms, p99 ${report.cold.e2eMs.p99} ms (sandbox creation p50 ${report.cold.sandboxCreateMs.p50} ms, first exec p50 ${report.cold.execMs.p50} ms)\n` +
        `warm: e2e p50 ${report.warm.e2eMs.p50} ms, p99 ${report.warm.e2eMs.p99} ms\n`,
    );
  } finally {
    await stopProcess(worker);
    await stopProcess(cp?.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
