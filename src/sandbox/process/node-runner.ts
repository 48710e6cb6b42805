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

// ------------------------------------------------------------ call chains

/** Options of `ctx.invoke(name, body?, opts?)`. */
interface InvokeOptions {
  priceClass?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  method?: string;
  path?: string;
}

interface ChainWaiter {
  /** The invocation that made the chain call. */
  id: number;
  name: string;
  resolve: (r: Response) => void;
  reject: (e: Error) => void;
}

/** Chain calls waiting for their answer, by reqId (unique for this runner's life). */
const chainWaiters = new Map<number, ChainWaiter>();
/** Invocations running now: a chain call can only be made from one of them. */
const runningCalls = new Set<number>();
let nextReqId = 1;

/** Thrown (as a rejection) when no answer to a chain call can come; its `code` is "chain_broken". */
function chainBroken(message: string): Error {
  return Object.assign(new Error(message), { code: 'chain_broken' });
}

/** Statuses whose responses have no body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * The body of `ctx.invoke` as bytes: anything a Request takes (string, bytes,
 * Blob, URLSearchParams, FormData, a stream), and any other value as JSON.
 */
async function encodeChainBody(body: unknown): Promise<{ bytes: Uint8Array; contentType: string | null }> {
  if (body === undefined || body === null) return { bytes: new Uint8Array(), contentType: null };
  const init =
    typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof Blob || body instanceof URLSearchParams || body instanceof FormData || body instanceof ReadableStream;
  if (!init) return { bytes: encoder.encode(JSON.stringify(body)), contentType: 'application/json' };
  const r = new Response(body as ConstructorParameters<typeof Response>[0]);
  return { bytes: new Uint8Array(await r.arrayBuffer()), contentType: r.headers.get('content-type') };
}

/** `ctx.invoke` of the invocation `id`: another function of this namespace, through the platform. */
async function chainInvoke(id: number, name: unknown, body: unknown, opts: InvokeOptions | undefined): Promise<Response> {
  if (typeof name !== 'string' || name === '') throw new TypeError('ctx.invoke(name, body?, opts?): name must be the name of a function of this namespace');
  const o: InvokeOptions = opts ?? {};
  if (typeof o !== 'object') throw new TypeError('ctx.invoke: opts must be an object { priceClass?, headers?, method?, path? }');
  if (o.priceClass !== undefined && typeof o.priceClass !== 'string') throw new TypeError('ctx.invoke: opts.priceClass must be a string');
  if (o.method !== undefined && typeof o.method !== 'string') throw new TypeError('ctx.invoke: opts.method must be a string');
  const method = (o.method ?? 'POST').toUpperCase();
  const path = o.path ?? '/';
  if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError(`ctx.invoke: opts.path must start with "/", got ${JSON.stringify(path)}`);
  const h = new Headers(o.headers);
  const { bytes, contentType } = await encodeChainBody(body);
  if (contentType !== null && !h.has('content-type')) h.set('content-type', contentType);
  const headers: Record<string, string> = {};
  h.forEach((v, k) => {
    headers[k] = v;
  });
  // the invocation may have ended while the body was read
  if (!runningCalls.has(id)) throw chainBroken(`ctx.invoke("${name}"): the call that made it has already ended`);
  const reqId = nextReqId++;
  const msg: FromRunner = { t: 'call', id, reqId, function: name, method, path, headers, body: bytes };
  if (o.priceClass !== undefined) msg.priceClass = o.priceClass;
  return new Promise<Response>((resolve, reject) => {
    chainWaiters.set(reqId, { id, name, resolve, reject });
    send(msg);
  });
}

function chainAnswer(m: Extract<ToRunner, { t: 'callResult' }>): void {
  const w = chainWaiters.get(m.reqId);
  if (w === undefined) return;
  chainWaiters.delete(m.reqId);
  if (m.error?.code === 'chain_broken') {
    w.reject(chainBroken(`ctx.invoke("${w.name}"): ${m.error.message}`));
    return;
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(m.headers)) {
    try {
      headers.append(k, v);
    } catch {
      // a header the Fetch API refuses is left out rather than failing the whole answer
    }
  }
  if (m.callId !== undefined) headers.set('x-call-id', m.callId);
  const status = m.status >= 200 && m.status <= 599 ? m.status : 502;
  w.resolve(new Response(NULL_BODY.has(status) ? null : m.body, { status, headers }));
}

/** An invocation ended: chain calls it left waiting can no longer be answered to it. */
function endChains(id: number): void {
  runningCalls.delete(id);
  for (const [reqId, w] of chainWaiters) {
    if (w.id !== id) continue;
    chainWaiters.delete(reqId);
    w.reject(chainBroken(`ctx.invoke("${w.name}"): the call that made it ended before the answer came`));
  }
}

function makeCtx(m: Extract<ToRunner, { t: 'invoke' }>): Readonly<Record<string, unknown>> {
  const ctx: Record<string, unknown> = {
    callId: m.callId,
    priceClass: m.priceClass,
    invoke: (name: unknown, body?: unknown, opts?: InvokeOptions) => chainInvoke(m.id, name, body, opts),
  };
  if (m.parentId !== undefined) ctx['parentId'] = m.parentId;
  return Object.freeze(ctx);
}

function failure(code: 'function_error' | 'response_too_large', message: string, status: number): [{ status: number; headers: Record<string, string>; body: Uint8Array }, { code: typeof code; message: string }] {
  return [{ status, headers: { 'content-type': 'application/json' }, body: encoder.encode(JSON.stringify({ error: { code, message } })) }, { code, message }];
}

async function invoke(m: Extract<ToRunner, { t: 'invoke' }>): Promise<void> {
  const t0 = performance.now();
  settleCpu();
  cpuShare.set(m.id, 0);
  runningCalls.add(m.id);
  try {
    if (handler === undefined) throw new Error('runner has no function loaded');
    const hasBody = m.method !== 'GET' && m.method !== 'HEAD';
    const request = new Request(`http://localhost${m.path}`, { method: m.method, headers: m.headers, body: hasBody ? m.body : null });
    const value = await handler(request, fnEnv, makeCtx(m));
    const r = await toResult(value);
    endChains(m.id);
    if (r.body.byteLength > m.maxResponseBytes) {
      result(m, t0, ...failure('response_too_large', `the function's response of ${r.body.byteLength} bytes exceeds the limit of ${m.maxResponseBytes} bytes`, 502));
      return;
    }
    result(m, t0, r);
  } catch (e) {
    endChains(m.id);
    logs.error(m.callId, e);
    result(m, t0, ...failure('function_error', e instanceof Error ? e.message : String(e), 500));
  }
}

process.on('message', (m: ToRunner) => {
  if (m.t === 'load') void load(m);
  else if (m.t === 'invoke') void logs.run(m.callId, () => invoke(m));
  else if (m.t === 'callResult') chainAnswer(m);
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
