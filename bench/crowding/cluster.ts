import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiJson, BIN, startControlPlaneProcess, stopProcess, waitForNodes, type Started } from '../lib/processes.js';
import { terminate } from '../../src/common/terminate.js';
import { CrowdingError } from './crowding-error.js';

interface WorkerProc {
  name: string;
  proc: ChildProcess;
  /** The last lines it logged (warnings and errors), for a clear message if it dies. */
  tail: string[];
}

export interface NodeInfo {
  name: string;
  state: string;
  /** Machine-scheduler preemptions, if the control plane reports them. */
  preemptions?: number;
}

export interface SandboxInfo {
  function: string;
  state: string;
  pid?: number;
}

/**
 * The processes of one crowding run: a control plane and N process workers,
 * all real `bin/baton.js` children, in a temporary directory removed at the
 * end. Workers restart with or without price classes; a child that dies
 * unexpectedly is reported by `check()` with what it last logged.
 */
export class CrowdingCluster {
  readonly dir: string;
  private workers: WorkerProc[] = [];
  private stopping = new Set<ChildProcess>();
  private failure: string | undefined;
  private closing: Promise<void> | undefined;
  private watchdog: ChildProcess | undefined;
  /** Lines the workers logged at warn level or above, over the whole run. */
  readonly warnings: string[] = [];

  private constructor(
    readonly cp: Started,
    dir: string,
    private readonly workerCount: number,
    private readonly cores: number,
  ) {
    this.dir = dir;
    // last resort if this process dies without closing us: no child may outlive it
    process.once('exit', this.killAll);
    cp.proc.once('exit', (code, signal) => {
      if (!this.stopping.has(cp.proc)) this.failure ??= `the control plane exited during the run (code ${code}, signal ${signal})`;
    });
  }

  static async start(workers: number, cores: number): Promise<CrowdingCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'baton-crowding-'));
    try {
      const cp = await startControlPlaneProcess(join(dir, 'cp'), ['--autoscaler-tick', '250ms']);
      const cluster = new CrowdingCluster(cp, dir, workers, cores);
      cluster.watchdog = guard(cp.proc, dir);
      return cluster;
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get controlPlanePid(): number | undefined {
    return this.cp.proc.pid;
  }

  get workerPids(): number[] {
    return this.workers.map((w) => w.proc.pid).filter((p): p is number => p !== undefined);
  }

  /** Make the next check() fail with this reason (the run was interrupted). */
  abort(reason: string): void {
    this.failure ??= reason;
  }

  /** Why the run cannot go on (a child died on its own, or the run was aborted), if it cannot. */
  get failed(): string | undefined {
    return this.failure;
  }

  /** Throw if the run cannot go on. */
  check(): void {
    if (this.failure !== undefined) throw new CrowdingError(this.failure);
  }

  async startWorkers(classes: boolean): Promise<void> {
    for (let i = 0; i < this.workerCount; i++) {
      const name = `crowd-${i}`;
      const args = [BIN, 'worker', '--control-plane', this.cp.url.replace(/^http/, 'ws'), '--runtime', 'process', '--state-dir', join(this.dir, name), '--name', name];
      args.push('--cores', String(this.cores), '--drain-timeout', '5s', '--log-level', 'warn');
      if (!classes) args.push('--no-classes');
      // the join token goes by environment, never on a command line; with an IPC channel the
      // worker stops by itself should this process die without stopping it
      const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: this.cp.joinToken } });
      const w: WorkerProc = { name, proc, tail: [] };
      let partial = '';
      proc.stderr?.on('data', (d: Buffer) => {
        const lines = (partial + d.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (line.trim() === '') continue;
          w.tail.push(line);
          if (w.tail.length > 20) w.tail.shift();
          // what a worker says while being stopped is about stopping, not about the run
          if (!this.stopping.has(proc)) this.warnings.push(`${name}: ${line}`);
        }
      });
      proc.once('exit', (code, signal) => {
        if (this.stopping.has(proc)) return;
        this.failure ??= `worker ${name} exited during the run (code ${code}, signal ${signal}); its last log lines:\n${w.tail.length === 0 ? '(none)' : w.tail.join('\n')}`;
      });
      this.workers.push(w);
    }
    await waitForNodes(this.cp, this.workerCount, 30_000);
  }

  /** Stop every worker (SIGTERM: they drain, then stop their sandboxes) and wait until the control plane has let them go. */
  async stopWorkers(): Promise<void> {
    const ws = this.workers.splice(0);
    for (const w of ws) this.stopping.add(w.proc);
    await Promise.all(ws.map((w) => terminate(w.proc, 10_000)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const nodes = await this.nodes();
      if (!nodes.some((n) => n.state === 'ready' || n.state === 'draining')) return;
      if (Date.now() > deadline) throw new CrowdingError(`the control plane still lists workers as ${nodes.map((n) => `${n.name}: ${n.state}`).join(', ')} 20 s after they stopped`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  nodes(): Promise<NodeInfo[]> {
    return apiJson<{ nodes: NodeInfo[] }>(this.cp, 'GET', '/v1/nodes').then((r) => r.nodes);
  }

  sandboxes(): Promise<SandboxInfo[]> {
    return apiJson<{ sandboxes: SandboxInfo[] }>(this.cp, 'GET', '/v1/sandboxes').then((r) => r.sandboxes);
  }

  /** Wait until every function has at least its count of ready sandboxes. */
  async waitForSandboxes(want: ReadonlyMap<string, number>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.check();
      const ready = new Map<string, number>();
      for (const s of await this.sandboxes()) if (s.state === 'ready') ready.set(s.function, (ready.get(s.function) ?? 0) + 1);
      const short = [...want].filter(([fn, n]) => (ready.get(fn) ?? 0) < n);
      if (short.length === 0) return;
      if (Date.now() > deadline) throw new CrowdingError(`sandboxes not ready after ${timeoutMs / 1000} s: ${short.map(([fn, n]) => `${fn} ${ready.get(fn) ?? 0}/${n}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Stop everything and remove the temporary directory; safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private readonly killAll = (): void => {
    for (const p of [...this.workers.map((w) => w.proc), this.cp.proc]) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };

  private async doClose(): Promise<void> {
    const ws = this.workers.splice(0);
    for (const w of ws) this.stopping.add(w.proc);
    this.stopping.add(this.cp.proc);
    await Promise.all(ws.map((w) => terminate(w.proc, 10_000)));
    await stopProcess(this.cp.proc);
    if (this.watchdog !== undefined) await terminate(this.watchdog, 1000);
    process.off('exit', this.killAll);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The control plane has no way to notice that its parent is gone (workers do,
 * through their IPC channel), so a SIGKILLed benchmark would leave it
 * running. A tiny sentinel holds an IPC channel to this process and, when the
 * channel drops, kills the control plane and removes the run's directory.
 */
function guard(cp: ChildProcess, dir: string): ChildProcess | undefined {
  if (cp.pid === undefined) return undefined;
  // it checks the pid still runs this run's control plane before killing it
  const script = `const fs = require('node:fs');
process.on('disconnect', () => {
  try { if (fs.readFileSync('/proc/${cp.pid}/cmdline', 'utf8').includes(${JSON.stringify(dir)})) process.kill(${cp.pid}, 'SIGKILL'); } catch {}
  setTimeout(() => { fs.rmSync(${JSON.stringify(dir)}, { recursive: true, force: true }); process.exit(0); }, 500);
});
process.on('SIGTERM', () => process.exit(0));`;
  const g = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  g.unref();
  g.channel?.unref();
  return g;
}
