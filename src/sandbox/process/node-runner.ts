/**
 * A generic node runner ("stem cell"). Started before any function is known;
 * on `load` it becomes the sandbox of one function: it moves into the code
 * directory, takes the function's environment, imports the handler and serves
 * invocations sent over IPC. It exits as soon as its IPC channel closes, so it
 * never outlives the worker that started it.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RunnerLogCapture } from './runner-logs.js';
import type { FromRunner, ToRunner } from './runner-protocol.js';

type FetchLike = (request: Request, env: Record<string, string>, ctx: unknown) => unknown;

let handler: FetchLike | undefined;
let fnEnv: Record<string, string> = {};

function send(m: FromRunner, done?: () => void): void {
  if (process.send === undefined) {
    done?.();
    return;
  }
  // With a callback a failed send (channel closing) is reported here instead of as an 'error' event.
  process.send(m, undefined, undefined, (e: Error | null) => {
    if (e !== null) logs.raw('stderr', `baton runner: could not reach the worker: ${e.message}\n`);
    done?.();
  });
}

/** The function's stdout/stderr, as lines tagged with their call, to the worker over IPC (see runner-logs.ts). */
const logs = new RunnerLogCapture((batch, done) => send({ t: 'logs', ...batch }, done));
logs.install();

process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (e) => {
  process.stderr.write(`baton runner: uncaught exception: ${e.stack ?? String(e)}\n`);
  // the lines so far (this one too) go out first; a wedged channel must not keep a broken runner alive
  setTimeout(() => process.exit(70), 1000).unref();
  logs.close(() => process.exit(70));
});
process.on('unhandledRejection', (e) => {
  process.stderr.write(`baton runner: unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
});

async function load(m: Extract<ToRunner, { t: 'load' }>): Promise<void> {
  const t0 = performance.now();
  try {
    // The code directory is read-only; the function works in its own scratch directory.
    process.chdir(m.scratchDir);
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, m.env);
    fnEnv = { ...m.env };
    const mod = (await import(pathToFileURL(resolve(m.codeDir, m.handler)).href)) as { default?: unknown };
    const d = mod.default;
    if (typeof d === 'function') handler = d as FetchLike;
    else if (typeof d === 'object' && d !== null && typeof (d as { fetch?: unknown }).fetch === 'function') {
      const obj = d as { fetch: FetchLike };
      handler = (req, env, ctx) => obj.fetch(req, env, ctx);
    } else {
      throw new Error(`${m.handler} must default-export a fetch handler: \`export default { async fetch(request, env, ctx) {…} }\` or a function of the request`);
    }
    send({ t: 'ready', initMs: performance.now() - t0 });
  } catch (e) {
    send({ t: 'loadError', message: e instanceof Error ? e.message : String(e) });
  }
}

const encoder = new TextEncoder();

async function toResult(value: unknown): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array }> {
  if (value instanceof Response) {
    const headers: Record<string, string> = {};
    value.headers.forEach((v, k) => {
      headers[k] = v;
    });
    return { status: value.status, headers, body: new Uint8Array(await value.arrayBuffer()) };
  }
  if (value === undefined || value === null) return { status: 204, headers: {}, body: new Uint8Array() };
  if (typeof value === 'string') return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: encoder.encode(value) };
  if (value instanceof Uint8Array) return { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: value };
  return { status: 200, headers: { 'content-type': 'application/json' }, body: encoder.encode(JSON.stringify(value)) };
}

/**
 * Per-call CPU metering: the runner's CPU time (all its threads) between two
 * events (a call starting or ending) is shared equally by the calls running
 * in between, so overlapping calls are each billed their part.
 */
const cpuShare = new Map<number, number>();
let lastCpu = 0;
function cpuNow(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
function settleCpu(): void {
  const now = cpuNow();
  const delta = now - lastCpu;
  lastCpu = now;
  if (cpuShare.size === 0) return;
  const each = delta / cpuShare.size;
  for (const [id, used] of cpuShare) cpuShare.set(id, used + each);
}

function result(m: Extract<ToRunner, { t: 'invoke' }>, t0: number, r: { status: number; headers: Record<string, string>; body: Uint8Array }, error?: { code: 'function_error' | 'response_too_large'; message: string }): void {
  logs.end(m.callId);
  settleCpu();
  const cpuUs = cpuShare.get(m.id) ?? 0;
  cpuShare.delete(m.id);
  const out: FromRunner = { t: 'result', id: m.id, ...r, execMs: performance.now() - t0, cpuUs };
  if (error !== undefined) out.error = error;
  send(out);
}

function failure(code: 'function_error' | 'response_too_large', message: string, status: number): [{ status: number; headers: Record<string, string>; body: Uint8Array }, { code: typeof code; message: string }] {
  return [{ status, headers: { 'content-type': 'application/json' }, body: encoder.encode(JSON.stringify({ error: { code, message } })) }, { code, message }];
}

async function invoke(m: Extract<ToRunner, { t: 'invoke' }>): Promise<void> {
  const t0 = performance.now();
  settleCpu();
  cpuShare.set(m.id, 0);
  try {
    if (handler === undefined) throw new Error('runner has no function loaded');
    const hasBody = m.method !== 'GET' && m.method !== 'HEAD';
    const request = new Request(`http://localhost${m.path}`, { method: m.method, headers: m.headers, body: hasBody ? m.body : null });
    const value = await handler(request, fnEnv, { callId: m.callId, priceClass: m.priceClass });
    const r = await toResult(value);
    if (r.body.byteLength > m.maxResponseBytes) {
      result(m, t0, ...failure('response_too_large', `the function's response of ${r.body.byteLength} bytes exceeds the limit of ${m.maxResponseBytes} bytes`, 502));
      return;
    }
    result(m, t0, r);
  } catch (e) {
    logs.error(m.callId, e);
    result(m, t0, ...failure('function_error', e instanceof Error ? e.message : String(e), 500));
  }
}

process.on('message', (m: ToRunner) => {
  if (m.t === 'load') void load(m);
  else if (m.t === 'invoke') void logs.run(m.callId, () => invoke(m));
});
/**
 * Warm the Web fetch classes (Node loads undici lazily, ~20 ms on first use)
 * while this runner is still a stem cell, so a cold start does not pay for it.
 */
async function warmUp(): Promise<void> {
  const req = new Request('http://localhost/', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: new Uint8Array(1) });
  await req.text();
  await new Response('warm', { headers: { 'content-type': 'text/plain' } }).arrayBuffer();
  await toResult({ warm: true });
}

void warmUp().finally(() => send({ t: 'up' }));
