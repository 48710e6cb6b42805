import type { ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { createServer, connect } from 'node:net';
import { BatonError } from '../../common/errors.js';
import { PausableTimer } from '../../common/pausable-timer.js';
import { terminate } from '../../common/terminate.js';
import type { SandboxSpec } from '../../protocol/messages.js';
import { DISCARD_LOGS, type SandboxLogSink } from '../log-sink.js';
import { baseEnv, errorResponse, type Sandbox, type SandboxControl, type SandboxRequest, type SandboxResponse, type SandboxRuntime } from '../runtime.js';
import type { Jail, Slot } from './jail.js';
import { pipeLines } from './pipe-lines.js';

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

type ShimMessage = { t: 'exit'; code: number | null; signal: string | null; stderr: string };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

class HttpSandbox implements Sandbox {
  private exitCb: ((reason: string) => void) | undefined;
  private stopping = false;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256 });
  private readonly timers = new Set<PausableTimer>();
  private frozen = false;

  constructor(
    readonly id: string,
    readonly spec: SandboxSpec,
    private readonly shim: ChildProcess,
    private readonly port: number,
    readonly control: SandboxControl,
  ) {
    shim.once('exit', (code, signal) => {
      this.agent.destroy();
      if (!this.stopping) this.exitCb?.(`server process exited (code ${code}, signal ${signal})`);
    });
  }

  get pid(): number | undefined {
    return this.shim.pid;
  }

  invoke(req: SandboxRequest): Promise<SandboxResponse> {
    const started = performance.now();
    return new Promise((resolve) => {
      const headers: Record<string, string> = {};
      for (const k in req.headers) if (!HOP.has(k)) headers[k] = req.headers[k] as string;
      headers['content-length'] = String(req.body.length);
      const r = httpRequest({ host: '127.0.0.1', port: this.port, method: req.method, path: req.path, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > req.maxResponseBytes) {
            // stop reading: the rest would only be thrown away
            this.untime(timer);
            r.destroy();
            resolve(errorResponse(502, 'response_too_large', `the function's response exceeds the limit of ${req.maxResponseBytes} bytes`, performance.now() - started));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          this.untime(timer);
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP.has(k)) out[k] = Array.isArray(v) ? v.join(', ') : v;
          resolve({ status: res.statusCode ?? 502, headers: out, body: Buffer.concat(chunks), execMs: performance.now() - started });
        });
        res.on('error', (e) => resolve(errorResponse(502, 'sandbox_failed', `response from the function broke off: ${e.message}`, performance.now() - started)));
      });
      // Counts execution only: paused while the sandbox is frozen by a higher class.
      const timer = new PausableTimer(req.timeoutMs, () => {
        this.timers.delete(timer);
        r.destroy();
        resolve(errorResponse(504, 'timeout', `function did not answer within ${req.timeoutMs} ms`, performance.now() - started));
      });
      this.timers.add(timer);
      if (this.frozen) timer.pause();
      r.on('error', (e) => {
        this.untime(timer);
        resolve(errorResponse(502, 'sandbox_failed', `cannot reach the function's server on port ${this.port}: ${e.message}`, performance.now() - started));
      });
      r.end(req.body);
    });
  }

  private untime(t: PausableTimer): void {
    t.clear();
    this.timers.delete(t);
  }

  freeze(): void {
    this.frozen = true;
    this.control.freeze();
    for (const t of this.timers) t.pause();
  }

  thaw(): void {
    this.frozen = false;
    this.control.thaw();
    for (const t of this.timers) t.resume();
  }

  stop(): Promise<void> {
    this.stopping = true;
    if (this.frozen) this.control.thaw();
    return terminate(this.shim, 4000);
  }

  onExit(cb: (reason: string) => void): void {
    this.exitCb = cb;
  }
}

/**
 * Runtime `http`: any command serving HTTP on $PORT (the Knative / Cloud Run
 * contract), readiness-checked. The command runs in its sandbox's jail (see
 * Jail) under a small supervisor that kills its whole process group with it;
 * its working directory is its (read-only) code directory, like a container's
 * workdir, and TMPDIR/HOME point at its private scratch directory.
 */
export class HttpRuntime implements SandboxRuntime {
  readonly name = 'http';

  constructor(
    private readonly jail: Jail,
    private readonly track: (child: ChildProcess, slot: Slot) => void,
    private readonly opts: { startupTimeoutMs?: number } = {},
    private readonly logs: SandboxLogSink = DISCARD_LOGS,
  ) {}

  async create(id: string, spec: SandboxSpec, codeDir: string | undefined): Promise<Sandbox> {
    const command = spec.command;
    if (command === undefined || command.length === 0) throw new BatonError('sandbox_failed', 'runtime http needs a command');
    const slot = this.jail.allocate();
    let shim: ChildProcess | undefined;
    try {
      if (codeDir !== undefined) await this.jail.linkCode(codeDir, slot);
      const port = await freePort();
      const cwd = codeDir === undefined ? slot.scratchDir : slot.codeDir;
      const env = { ...baseEnv(), ...spec.env, PORT: String(port), TMPDIR: slot.scratchDir, HOME: slot.scratchDir };
      // the server's stdout and stderr are its sandbox's log (no call ids: an http server's output cannot be told apart by request)
      shim = this.jail.spawn(slot, [this.jail.node, this.jail.script('http-shim.js'), cwd, ...command], env, ['ignore', 'pipe', 'pipe', 'ipc']);
      this.track(shim, slot);
      const log = this.logs.open(id, spec.functionKey);
      pipeLines(shim, (stream, line) => log.write(stream, line));
      shim.once('close', () => log.close());
      const child = shim;
      return await this.awaitReady(id, shim, port, command, spec, this.jail.control(slot, () => child.pid));
    } catch (e) {
      // the slot goes back once its process has exited (see track), or now if none started
      if (shim === undefined) await this.jail.release(slot);
      throw e;
    }
  }

  private async awaitReady(id: string, shim: ChildProcess, port: number, command: string[], spec: SandboxSpec, control: SandboxControl): Promise<Sandbox> {
    let stderr = '';
    shim.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    let exited: ShimMessage | undefined;
    shim.on('message', (m: ShimMessage) => {
      if (m.t === 'exit') exited = m;
    });
    shim.once('exit', (code) => (exited ??= { t: 'exit', code, signal: null, stderr }));
    shim.on('error', (e) => (exited ??= { t: 'exit', code: null, signal: null, stderr: `cannot start the sandbox: ${e.message}` }));
    const startupMs = this.opts.startupTimeoutMs ?? Math.min(spec.timeoutMs, 20_000);
    const deadline = performance.now() + startupMs;
    let wait = 2;
    for (;;) {
      if (exited !== undefined) {
        const tail = (exited.t === 'exit' && exited.stderr ? exited.stderr : stderr).trim().split('\n').slice(-5).join(' | ');
        throw new BatonError('sandbox_failed', `\`${command.join(' ')}\` exited before serving on $PORT (code ${exited.t === 'exit' ? exited.code : '?'})${tail ? `: ${tail}` : ''}`);
      }
      if (await canConnect(port)) break;
      if (performance.now() > deadline) {
        shim.kill('SIGKILL');
        throw new BatonError('sandbox_failed', `\`${command.join(' ')}\` did not listen on $PORT (${port}) within ${Math.round(startupMs / 1000)} s of starting; an http function must serve HTTP on the port in $PORT`);
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 100);
    }
    return new HttpSandbox(id, spec, shim, port, control);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
