import type { ChildProcess } from 'node:child_process';
import { BatonError } from '../../common/errors.js';
import { terminate } from '../../common/terminate.js';
import type { Logger } from '../../common/logger.js';
import type { SandboxSpec } from '../../protocol/messages.js';
import { baseEnv, errorResponse, type Sandbox, type SandboxRequest, type SandboxResponse, type SandboxRuntime } from '../runtime.js';
import type { Cgroups } from './cgroups.js';
import type { FromRunner } from './runner-protocol.js';
import { StemCellPool } from './stem-cell-pool.js';

interface Pending {
  resolve: (r: SandboxResponse) => void;
  timer: NodeJS.Timeout;
}

class NodeSandbox implements Sandbox {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private exitCb: ((reason: string) => void) | undefined;
  private stopping = false;

  constructor(
    readonly id: string,
    readonly spec: SandboxSpec,
    private readonly child: ChildProcess,
    private readonly cgroups: Cgroups,
  ) {
    child.on('message', (m: FromRunner) => {
      if (m.t !== 'result') return;
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      const r: SandboxResponse = { status: m.status, headers: m.headers, body: m.body, execMs: m.execMs };
      if (m.error !== undefined) r.error = m.error;
      p.resolve(r);
    });
    child.once('exit', (code, signal) => {
      const reason = `runner exited (code ${code}, signal ${signal})`;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.resolve(errorResponse(502, 'sandbox_failed', `sandbox ${id} died during the call: ${reason}`));
      }
      this.pending.clear();
      this.cgroups.remove(id);
      if (!this.stopping) this.exitCb?.(reason);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  invoke(req: SandboxRequest): Promise<SandboxResponse> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || !this.child.connected) {
      return Promise.resolve(errorResponse(502, 'sandbox_failed', `sandbox ${this.id} is not running`));
    }
    const id = this.nextId++;
    const started = performance.now();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(errorResponse(504, 'timeout', `function did not answer within ${req.timeoutMs} ms; its sandbox was stopped`, performance.now() - started));
        // A runaway handler may hold the event loop: the only safe recovery is a new process.
        this.child.kill('SIGKILL');
      }, req.timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.child.send({ t: 'invoke', id, method: req.method, path: req.path, headers: req.headers, body: req.body, callId: req.callId, priceClass: req.priceClass });
    });
  }

  stop(): Promise<void> {
    this.stopping = true;
    return terminate(this.child, 2000);
  }

  onExit(cb: (reason: string) => void): void {
    this.exitCb = cb;
  }
}

/** Runtime `node`: a JS module with a default fetch handler, in a pre-started runner process. */
export class NodeRuntime implements SandboxRuntime {
  readonly name = 'node';
  private readonly pool: StemCellPool;

  constructor(
    log: Logger,
    private readonly cgroups: Cgroups,
    opts: { stemCells?: number; runnerPath?: string } = {},
  ) {
    this.pool = new StemCellPool(opts.stemCells ?? 2, log, opts.runnerPath);
  }

  async create(id: string, spec: SandboxSpec, codeDir: string | undefined): Promise<Sandbox> {
    if (spec.handler === undefined) throw new BatonError('sandbox_failed', 'runtime node needs a handler');
    if (codeDir === undefined) throw new BatonError('sandbox_failed', 'runtime node needs a code bundle');
    const child = await this.pool.take();
    if (child.pid !== undefined) this.cgroups.place(child.pid, id);
    const loaded = await new Promise<FromRunner>((resolve) => {
      const onMessage = (m: FromRunner): void => {
        if (m.t === 'ready' || m.t === 'loadError') {
          child.off('message', onMessage);
          child.off('exit', onExit);
          resolve(m);
        }
      };
      const onExit = (code: number | null): void => {
        child.off('message', onMessage);
        resolve({ t: 'loadError', message: `runner exited while loading (code ${code})` });
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ t: 'load', codeDir, handler: spec.handler ?? '', env: { ...baseEnv(), ...spec.env } });
    });
    if (loaded.t === 'loadError') {
      child.kill('SIGKILL');
      throw new BatonError('sandbox_failed', `cannot load ${spec.handler}: ${loaded.message}`);
    }
    return new NodeSandbox(id, spec, child, this.cgroups);
  }

  close(): Promise<void> {
    this.pool.close();
    return Promise.resolve();
  }
}
