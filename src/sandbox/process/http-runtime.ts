import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { createServer, connect } from 'node:net';
import { mkdirSync } from 'node:fs';
import { compiledSibling } from '../../common/compiled-path.js';
import { BatonError } from '../../common/errors.js';
import { terminate } from '../../common/terminate.js';
import type { SandboxSpec } from '../../protocol/messages.js';
import { baseEnv, errorResponse, type Sandbox, type SandboxRequest, type SandboxResponse, type SandboxRuntime } from '../runtime.js';
import type { Cgroups } from './cgroups.js';

const SHIM_PATH = compiledSibling('http-shim.js', import.meta.url);
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

type ShimMessage = { t: 'spawned'; pid: number } | { t: 'exit'; code: number | null; signal: string | null; stderr: string };

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

  constructor(
    readonly id: string,
    readonly spec: SandboxSpec,
    private readonly shim: ChildProcess,
    readonly pid: number | undefined,
    private readonly port: number,
    private readonly cgroups: Cgroups,
  ) {
    shim.once('exit', (code, signal) => {
      this.agent.destroy();
      this.cgroups.remove(id);
      if (!this.stopping) this.exitCb?.(`server process exited (code ${code}, signal ${signal})`);
    });
  }

  invoke(req: SandboxRequest): Promise<SandboxResponse> {
    const started = performance.now();
    return new Promise((resolve) => {
      const headers: Record<string, string> = {};
      for (const k in req.headers) if (!HOP.has(k)) headers[k] = req.headers[k] as string;
      headers['content-length'] = String(req.body.length);
      const r = httpRequest({ host: '127.0.0.1', port: this.port, method: req.method, path: req.path, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP.has(k)) out[k] = Array.isArray(v) ? v.join(', ') : v;
          resolve({ status: res.statusCode ?? 502, headers: out, body: Buffer.concat(chunks), execMs: performance.now() - started });
        });
        res.on('error', (e) => resolve(errorResponse(502, 'sandbox_failed', `response from the function broke off: ${e.message}`, performance.now() - started)));
      });
      const timer = setTimeout(() => {
        r.destroy();
        resolve(errorResponse(504, 'timeout', `function did not answer within ${req.timeoutMs} ms`, performance.now() - started));
      }, req.timeoutMs);
      r.on('error', (e) => {
        clearTimeout(timer);
        resolve(errorResponse(502, 'sandbox_failed', `cannot reach the function's server on port ${this.port}: ${e.message}`, performance.now() - started));
      });
      r.end(req.body);
    });
  }

  stop(): Promise<void> {
    this.stopping = true;
    return terminate(this.shim, 4000);
  }

  onExit(cb: (reason: string) => void): void {
    this.exitCb = cb;
  }
}

/** Runtime `http`: any command serving HTTP on $PORT (the Knative / Cloud Run contract), readiness-checked. */
export class HttpRuntime implements SandboxRuntime {
  readonly name = 'http';

  constructor(
    private readonly cgroups: Cgroups,
    private readonly opts: { startupTimeoutMs?: number; scratchDir: string },
  ) {}

  async create(id: string, spec: SandboxSpec, codeDir: string | undefined): Promise<Sandbox> {
    const command = spec.command;
    if (command === undefined || command.length === 0) throw new BatonError('sandbox_failed', 'runtime http needs a command');
    let cwd = codeDir;
    if (cwd === undefined) {
      cwd = `${this.opts.scratchDir}/${id}`;
      mkdirSync(cwd, { recursive: true });
    }
    const port = await freePort();
    const shim = fork(SHIM_PATH, [cwd, ...command], {
      env: { ...baseEnv(), ...spec.env, PORT: String(port) },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      execArgv: [],
    });
    let stderr = '';
    shim.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    let exited: ShimMessage | undefined;
    let pid: number | undefined;
    shim.on('message', (m: ShimMessage) => {
      if (m.t === 'spawned') pid = m.pid;
      else exited = m;
    });
    shim.once('exit', (code) => (exited ??= { t: 'exit', code, signal: null, stderr }));
    const deadline = performance.now() + (this.opts.startupTimeoutMs ?? Math.min(spec.timeoutMs, 30_000));
    let wait = 2;
    for (;;) {
      if (exited !== undefined) {
        const tail = (exited.t === 'exit' && exited.stderr ? exited.stderr : stderr).trim().split('\n').slice(-5).join(' | ');
        throw new BatonError('sandbox_failed', `\`${command.join(' ')}\` exited before serving on $PORT (code ${exited.t === 'exit' ? exited.code : '?'})${tail ? `: ${tail}` : ''}`);
      }
      if (await canConnect(port)) break;
      if (performance.now() > deadline) {
        shim.kill('SIGTERM');
        throw new BatonError('sandbox_failed', `\`${command.join(' ')}\` did not accept connections on $PORT=${port} within the startup timeout`);
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 100);
    }
    if (pid !== undefined) this.cgroups.place(pid, id);
    return new HttpSandbox(id, spec, shim, pid, port, this.cgroups);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
