import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { packDirectory } from '../../src/common/bundle.js';
import { terminate } from '../../src/common/terminate.js';

/**
 * Integration-test harness: starts the real `bin/baton.js` processes on
 * 127.0.0.1 with port 0, each in its own temp directory, and stops them by pid.
 */
export const REPO = resolve(import.meta.dirname, '../..');
export const BIN = join(REPO, 'bin/baton.js');
export const FIXTURES = join(REPO, 'test/fixtures');

const live = new Set<ChildProcess>();

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `baton-${prefix}-`));
}

export interface CpHandle {
  url: string;
  apiKey: string;
  joinToken: string;
  dataDir: string;
  proc: ChildProcess;
  output: () => string;
}

function spawnBaton(args: string[], env: Record<string, string> = {}): { proc: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BATON_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, output: () => out };
}

/**
 * The scheduler cores the suite runs with: `BATON_TEST_SCHEDULER_THREADS=2 npm test` runs every
 * cluster test on two (CI runs the integration tests once with the default and once with 2).
 */
export function threadArgs(args: readonly string[] = []): string[] {
  const n = process.env['BATON_TEST_SCHEDULER_THREADS'];
  return n === undefined || n === '' || args.includes('--scheduler-threads') ? [] : ['--scheduler-threads', n];
}

export async function startControlPlane(opts: { dataDir?: string; args?: string[]; env?: Record<string, string>; startTimeoutMs?: number } = {}): Promise<CpHandle> {
  const dataDir = opts.dataDir ?? tempDir('cp');
  const { proc, output } = spawnBaton(['controlplane', '--port', '0', '--data-dir', dataDir, '--heartbeat-timeout', '2s', ...threadArgs(opts.args), ...(opts.args ?? [])], opts.env);
  const url = await waitFor(() => /gateway: (http:\/\/\S+)/.exec(output())?.[1], opts.startTimeoutMs ?? 15_000, () => `control plane did not start:\n${output()}`);
  const creds = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')) as { apiKey: string; joinToken: string };
  return { url, apiKey: creds.apiKey, joinToken: creds.joinToken, dataDir, proc, output };
}

export interface WorkerHandle {
  stateDir: string;
  proc: ChildProcess;
  output: () => string;
}

export async function startWorker(
  cp: { url: string; joinToken: string; apiKey: string },
  opts: { stateDir?: string; runtime?: 'process' | 'emulated'; name?: string; args?: string[]; env?: Record<string, string>; controlPlane?: string } = {},
): Promise<WorkerHandle> {
  const stateDir = opts.stateDir ?? tempDir('worker');
  const name = opts.name ?? `w-${Math.random().toString(36).slice(2, 8)}`;
  // the join token goes by environment: it must never appear on a command line
  const { proc, output } = spawnBaton(
    ['worker', '--control-plane', opts.controlPlane ?? cp.url.replace(/^http/, 'ws'), '--runtime', opts.runtime ?? 'process', '--state-dir', stateDir, '--name', name, ...(opts.args ?? [])],
    { BATON_JOIN_TOKEN: cp.joinToken, ...opts.env },
  );
  await waitFor(async () => {
    if (/rejected the join token|refused this worker/.test(output())) throw new Error(`worker ${name} was refused:\n${output()}`);
    const { body } = await api(cp, 'GET', '/v1/nodes');
    return (body as { nodes: { name: string; state: string }[] }).nodes.some((n) => n.name === name && n.state === 'ready') || undefined;
  }, 15_000, () => `worker ${name} did not join:\n${output()}`);
  return { stateDir, proc, output };
}

export interface ApiResponse {
  status: number;
  body: unknown;
  text: string;
  headers: Headers;
}

export async function api(cp: { url: string; apiKey: string }, method: string, path: string, body?: unknown, key: string | null = cp.apiKey): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  if (key !== null) headers['authorization'] = `Bearer ${key}`;
  let payload: string | Uint8Array | undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(cp.url + path, { method, headers, body: payload });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

export async function deploy(cp: { url: string; apiKey: string }, name: string, spec: Record<string, unknown>, codeDir?: string, ns = 'default', key?: string): Promise<ApiResponse> {
  const body: Record<string, unknown> = { spec };
  if (codeDir !== undefined) body['bundle'] = Buffer.from(await packDirectory(codeDir)).toString('base64');
  return api(cp, 'PUT', `/v1/namespaces/${ns}/functions/${name}`, body, key ?? cp.apiKey);
}

/** Parse `Server-Timing` into { queue, sched, cold, exec, total } milliseconds. */
export function timing(headers: Headers): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (headers.get('server-timing') ?? '').split(',')) {
    const m = /^\s*(\w+);dur=([\d.]+)/.exec(part);
    if (m !== null) out[m[1] as string] = Number(m[2]);
  }
  return out;
}

export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      // not ready yet, unless the probe says it never will be
      if ((e as Error).message.includes('was refused')) throw e;
    }
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function kill(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return terminate(proc, 5000, signal);
}

export async function stopAll(dirs: string[] = []): Promise<void> {
  await Promise.all([...live].map((p) => kill(p, 'SIGTERM')));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface SandboxView {
  id: string;
  function: string;
  nodeId: string;
  node: string;
  state: string;
  inflight: number;
  pid?: number;
}

/** The cluster's sandboxes (admin view, with the host pids the workers reported). */
export async function sandboxes(cp: { url: string; apiKey: string }, fn?: string): Promise<SandboxView[]> {
  const all = ((await api(cp, 'GET', '/v1/sandboxes')).body as { sandboxes: SandboxView[] }).sandboxes;
  return fn === undefined ? all : all.filter((s) => s.function === fn || s.function.endsWith(`/${fn}`));
}

/** Host pid of the one sandbox of a function. */
export async function sandboxPid(cp: { url: string; apiKey: string }, fn: string): Promise<number> {
  const s = await sandboxes(cp, fn);
  if (s.length !== 1 || s[0]?.pid === undefined) throw new Error(`expected one sandbox of ${fn} with a pid, got ${JSON.stringify(s)}`);
  return s[0].pid;
}
