import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeMachine } from '../lib/machine.js';
import { apiJson, BIN, startControlPlaneProcess, stopProcess, waitForNodes, type Started } from '../lib/processes.js';
import { percentile, round } from '../lib/stats.js';

const FLEET = fileURLToPath(new URL('../churn/fleet.js', import.meta.url));
const REPO = dirname(dirname(BIN));

const HELP = `baton bench cli — how long a \`baton\` command takes, start to exit

  --runs N      timed runs of each command (default 30)
  --warmup N    untimed runs of each command first, to warm the file cache (default 3)
  --out FILE    write the results as JSON
  --compare BIN also time another build's bin/baton.js (say, a copy of the
                previous build) in the same rounds, for a before/after under
                the same load

Starts a control plane and one emulated worker as child processes, deploys one
function, then runs each command as a new process (as a shell would) and
reports the median and p90 of the wall time from spawn to exit:

  node -e 0                  the floor: a bare Node.js start on this machine
  baton --version            parsing only
  baton fn ls                two API calls (whoami, list)
  baton invoke cli-bench     one warm call (emulated sandbox, 1 ms execution)

The commands take turns, so noise from other processes falls on all of them alike.`;

interface CommandCase {
  label: string;
  args: string[];
}

export interface CommandTiming {
  runs: number;
  p50Ms: number;
  p90Ms: number;
  minMs: number;
}

function timeOnce(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return ms;
}

export async function runCliStartCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { runs: { type: 'string', default: '30' }, warmup: { type: 'string', default: '3' }, out: { type: 'string' }, compare: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`--runs: expected a positive integer, got "${values.runs}"`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`--warmup: expected a non-negative integer, got "${values.warmup}"`);
  const dir = mkdtempSync(join(tmpdir(), 'baton-cli-bench-'));
  let cp: Started | undefined;
  let fleet: ChildProcess | undefined;
  try {
    cp = await startControlPlaneProcess(join(dir, 'cp'));
    fleet = spawn(process.execPath, [FLEET, cp.url.replace(/^http/, 'ws'), '1', join(dir, 'fleet'), '0', '1'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: cp.joinToken } });
    await waitForNodes(cp, 1, 20_000);
    await apiJson(cp, 'PUT', '/v1/namespaces/default/functions/cli-bench', { spec: { runtime: 'http', command: ['emulated'], scale: { min: 1, max: 1, keepAlive: '10m' } } });
    const target = ['--gateway', cp.url, '--api-key', cp.apiKey];
    const builds: [string, string][] = [['', BIN]];
    if (values.compare !== undefined) builds.push([' (compared)', resolve(values.compare)]);
    const cases: CommandCase[] = [{ label: 'node -e 0', args: ['-e', '0'] }];
    for (const [suffix, bin] of builds) {
      cases.push(
        { label: `baton --version${suffix}`, args: [bin, '--version'] },
        { label: `baton fn ls${suffix}`, args: [bin, ...target, 'fn', 'ls'] },
        { label: `baton invoke${suffix}`, args: [bin, ...target, 'invoke', 'cli-bench', '-d', 'x'] },
      );
    }
    for (let i = 0; i < warmup; i++) for (const c of cases) timeOnce(c.args);
    const samples = new Map<string, number[]>(cases.map((c) => [c.label, []]));
    for (let i = 0; i < runs; i++) {
      for (const c of cases) samples.get(c.label)?.push(timeOnce(c.args));
      if (process.stderr.isTTY) process.stderr.write(`\r${i + 1}/${runs}`);
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    const commands: Record<string, CommandTiming> = {};
    for (const [label, ms] of samples) commands[label] = { runs: ms.length, p50Ms: round(percentile(ms, 50), 1), p90Ms: round(percentile(ms, 90), 1), minMs: round(percentile(ms, 0), 1) };
    const report = { machine: describeMachine(), config: { runs, warmup, compared: values.compare === undefined ? null : relative(REPO, resolve(values.compare)) }, commands };
    if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
    const width = Math.max(...cases.map((c) => c.label.length));
    process.stdout.write(`CLI start to exit, ${runs} runs each, on ${String(report.machine['cpu'])} × ${String(report.machine['cores'])}, Node ${process.version}\n`);
    process.stdout.write(`${'command'.padEnd(width)}  ${'p50 ms'.padStart(7)}  ${'p90 ms'.padStart(7)}  ${'min ms'.padStart(7)}\n`);
    for (const [label, t] of Object.entries(commands)) process.stdout.write(`${label.padEnd(width)}  ${String(t.p50Ms).padStart(7)}  ${String(t.p90Ms).padStart(7)}  ${String(t.minMs).padStart(7)}\n`);
  } finally {
    await stopProcess(fleet);
    await stopProcess(cp?.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
