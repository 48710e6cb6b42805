import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { terminate } from '../../src/common/terminate.js';

export const BIN = fileURLToPath(new URL('../../../bin/baton.js', import.meta.url));

export interface Started {
  proc: ChildProcess;
  url: string;
  apiKey: string;
  joinToken: string;
}

/** Start `baton controlplane` as a child process on a free port and wait for its gateway line. */
export async function startControlPlaneProcess(dataDir: string, extraArgs: string[] = [], nodeArgs: string[] = []): Promise<Started> {
  const proc = spawn(process.execPath, [...nodeArgs, BIN, 'controlplane', '--port', '0', '--data-dir', dataDir, '--log-level', 'error', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
    process.stderr.write(d);
  });
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /gateway: (\S+)/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    proc.once('exit', (code) => reject(new Error(`control plane exited (code ${code}) before listening:\n${out}`)));
  });
  const creds = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')) as { apiKey: string; joinToken: string };
  return { proc, url, apiKey: creds.apiKey, joinToken: creds.joinToken };
}

export function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  return proc === undefined ? Promise.resolve() : terminate(proc, 5000);
}

export async function apiJson<T>(base: { url: string; apiKey: string }, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(base.url + path, {
    method,
    headers: { authorization: `Bearer ${base.apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 400) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

export async function waitForNodes(base: { url: string; apiKey: string }, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { nodes } = await apiJson<{ nodes: { state: string }[] }>(base, 'GET', '/v1/nodes');
    const ready = nodes.filter((n) => n.state === 'ready').length;
    if (ready >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${ready} of ${count} workers joined within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function metricValue(base: { url: string }, name: string): Promise<number> {
  return (await metricValues(base, [name]))[0] ?? 0;
}

/**
 * Several metrics from one scrape of /metrics (a scrape costs the control plane
 * CPU in proportion to its functions: a benchmark scrapes as rarely as it can).
 */
export async function metricValues(base: { url: string }, names: readonly string[]): Promise<number[]> {
  const text = await (await fetch(`${base.url}/metrics`)).text();
  const sums = names.map(() => 0);
  for (const line of text.split('\n')) {
    names.forEach((name, i) => {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sums[i] = (sums[i] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    });
  }
  return sums;
}

/**
 * CPU seconds each thread of the control plane has used (baton_thread_cpu_seconds):
 * the main thread, and the scheduler cores together.
 */
export async function threadCpuSeconds(base: { url: string }): Promise<{ main: number; cores: number }> {
  const text = await (await fetch(`${base.url}/metrics`)).text();
  const out = { main: 0, cores: 0 };
  for (const line of text.split('\n')) {
    const m = /^baton_thread_cpu_seconds\{thread="([a-z0-9]+)"\} (\S+)$/.exec(line);
    if (m === null) continue;
    if (m[1] === 'main') out.main += Number(m[2]);
    else out.cores += Number(m[2]);
  }
  return out;
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every mainstream architecture). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system, all threads) a child process has used, read from
 * /proc/<pid>/stat without asking the process anything, so measuring costs it
 * nothing. Where /proc cannot be read, the control plane's own
 * baton_process_cpu_seconds gauge (process.cpuUsage) is scraped instead.
 */
export async function processCpuSeconds(started: Started): Promise<number> {
  return childCpuSeconds(started.proc) ?? metricValue(started, 'baton_process_cpu_seconds');
}

/** CPU seconds (user + system, all threads) of a child process from /proc, or undefined where that cannot be read. */
export function childCpuSeconds(proc: ChildProcess): number | undefined {
  if (proc.pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${proc.pid}/stat`, 'utf8');
    // fields after the command name (which may contain spaces) start at state; utime and stime are fields 14 and 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / USER_HZ;
  } catch {
    return undefined; // not Linux, or the process is gone
  }
}

/** CPU seconds this process (the load generator) has used, all threads. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
