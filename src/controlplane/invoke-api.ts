import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { InvocationResult, RoutedRequest } from '../dataplane/types.js';
import type { Authenticator, Principal } from './auth.js';
import { Exchange, decodeSegment, readRequest, type RequestInfo } from './http-kit.js';

/** Where the invocation routes send calls: the scheduler core's view of every function, and the ways to run one. */
export interface InvokeRouter {
  /** Run a call (here, or on the core that owns the function); `reply` exactly once. Returns a cancel, for a caller that went away. */
  call(key: string, req: RoutedRequest, reply: (r: InvocationResult) => void): () => void;
  /** Store an async call durably; resolves with its id once it is. */
  accept(key: string, req: RoutedRequest, callbackUrl: string | undefined): Promise<{ id: string; status: string }>;
}

export interface InvokeDeps {
  auth: Pick<Authenticator, 'authenticate'>;
  router: InvokeRouter;
  log: Logger;
  priceClasses: readonly string[];
  maxInvokeBodyBytes: number;
}

/** Headers that describe the connection, not the message, or that carry our own credentials. */
export const DROP_REQUEST = new Set(['authorization', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'te', 'trailer', 'host', 'content-length', 'x-price-class', 'x-callback-url']);
/** Connection headers, and `date`: uWS writes its own, and a response carries exactly one. */
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'content-length', 'trailer', 'date']);

/**
 * A header a function sends back must not be able to split the response: uWS
 * writes names and values as they are, so a CR, LF or NUL (or a name that is
 * not an HTTP token) is dropped rather than passed through.
 */
const UNSAFE_VALUE = /[\r\n\0]/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function ms(n: number): string {
  return n.toFixed(3);
}

function serverTiming(r: InvocationResult): string {
  const t = r.timing;
  const base = `queue;dur=${ms(t.queueMs)}, sched;dur=${ms(t.schedMs)}, cold;dur=${ms(t.coldMs)}, exec;dur=${ms(t.execMs)}, total;dur=${ms(t.totalMs)}`;
  const u = r.usage;
  // preempt: time frozen by higher classes; cpu: CPU time billed (preempted time is not CPU)
  return u === undefined ? base : `${base}, preempt;dur=${ms(u.preemptMs)}, cpu;dur=${ms(u.cpuMs)}`;
}

interface Target {
  key: string;
  ns: string;
  /** Asked for with X-Price-Class; else the core that owns the function settles it (its own class). */
  priceClass: string | undefined;
  subPath: string;
  headers: Record<string, string>;
}

/** Which function a `/function/…` or `/async-function/…` path names, checked against the key, and the call's class. */
function resolveTarget(d: InvokeDeps, info: RequestInfo, who: Principal, prefix: string): Target {
  const rest = info.url.slice(prefix.length);
  const slash = rest.indexOf('/');
  const target = decodeSegment(slash === -1 ? rest : rest.slice(0, slash), `the function name (${prefix}{name}[.{namespace}])`);
  const subPath = (slash === -1 ? '/' : rest.slice(slash)) + (info.query === '' ? '' : `?${info.query}`);
  const dot = target.indexOf('.');
  const name = dot === -1 ? target : target.slice(0, dot);
  const ns = dot === -1 ? who.namespace : target.slice(dot + 1);
  if (name === '') throw new BatonError('bad_request', `missing function name: POST ${prefix}{name}`);
  if (ns !== who.namespace && !who.admin) throw new BatonError('forbidden', `this API key belongs to namespace "${who.namespace}" and cannot invoke functions of "${ns}"`);
  const key = `${ns}/${name}`;
  const asked = info.headers['x-price-class'];
  if (asked !== undefined && !d.priceClasses.includes(asked)) {
    throw new BatonError('bad_request', `X-Price-Class: unknown price class "${asked}"; configured classes: ${d.priceClasses.join(', ')}`);
  }
  const headers = Object.create(null) as Record<string, string>;
  for (const k in info.headers) if (!DROP_REQUEST.has(k)) headers[k] = info.headers[k] as string;
  // the core that owns the function answers 404 if there is none, settles the class and admits the call (CoreCalls)
  return { key, ns, priceClass: asked, subPath, headers };
}

function callbackUrlOf(info: RequestInfo): string | undefined {
  const raw = info.headers['x-callback-url'];
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BatonError('bad_request', `X-Callback-Url: "${raw.slice(0, 200)}" is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BatonError('bad_request', `X-Callback-Url: expected http:// or https://, got ${url.protocol}`);
  return url.toString();
}

/**
 * `POST /function/{fn}[.{ns}][/path]`: synchronous invocation. The caller's
 * namespace is the key's; admins may name another with `{fn}.{ns}`.
 * `POST /async-function/{fn}[.{ns}][/path]`: the same call, accepted (202)
 * once it is stored durably, run later; optional `X-Callback-Url`.
 */
export function mountInvokeApi(app: TemplatedApp, d: InvokeDeps): void {
  const handler = (res: HttpResponse, req: HttpRequest): void => {
    // where the request arrives: scheduling latency counts from here, body reading and auth included
    const arrivedAt = performance.now();
    const ex = new Exchange(res, req.getMethod() === 'head');
    try {
      const info = readRequest(req, []);
      const who = d.auth.authenticate(info.headers['authorization']);
      const t = resolveTarget(d, info, who, '/function/');
      ex.readBody(info, d.maxInvokeBodyBytes).then(
        (body) => {
          if (ex.aborted) return;
          const cancel = d.router.call(t.key, { method: info.method, path: t.subPath, headers: t.headers, body, priceClass: t.priceClass, arrivedAt }, (r) => reply(ex, r));
          ex.whenAborted(cancel);
        },
        (e: unknown) => ex.error(e, d.log),
      );
    } catch (e) {
      ex.error(e, d.log);
    }
  };
  app.any('/function/*', handler);

  app.any('/async-function/*', (res, req) => {
    const ex = new Exchange(res, req.getMethod() === 'head');
    try {
      const info = readRequest(req, []);
      const who = d.auth.authenticate(info.headers['authorization']);
      const t = resolveTarget(d, info, who, '/async-function/');
      const callbackUrl = callbackUrlOf(info);
      ex.readBody(info, d.maxInvokeBodyBytes)
        .then((body) => d.router.accept(t.key, { method: info.method, path: t.subPath, headers: t.headers, body, priceClass: t.priceClass }, callbackUrl))
        .then(
          (rec) => {
            const location = `/v1/namespaces/${t.ns}/activations/${rec.id}`;
            ex.json(202, { id: rec.id, status: rec.status, location }, { 'x-call-id': rec.id, location });
          },
          (e: unknown) => ex.error(e, d.log),
        );
    } catch (e) {
      ex.error(e, d.log);
    }
  });

  function reply(ex: Exchange, r: InvocationResult): void {
    const { status, headers, body } = responseOf(r);
    // a call the owner core refused before it existed (no such function, over budget) has no id and no timing
    if (r.callId !== '') {
      headers['x-call-id'] = r.callId;
      headers['server-timing'] = serverTiming(r);
    }
    // usually called from a worker's WebSocket message: write outside that callback
    ex.sendSoon(status, headers, body);
  }
}

/**
 * What a caller gets for a call's outcome: the function's own status, (safe)
 * headers and body, or the error as JSON. Used for sync answers and for an
 * async call's stored result alike.
 */
export function responseOf(r: { status: number; headers: Record<string, string>; body: Uint8Array; error?: { code: string; message: string } | undefined }): { status: number; headers: Record<string, string>; body: Uint8Array | string } {
  const headers: Record<string, string> = {};
  let status = r.status;
  let body: Uint8Array | string;
  if (r.error !== undefined) {
    headers['content-type'] = 'application/json';
    const retryAfter = r.headers['retry-after'];
    if (retryAfter !== undefined && !UNSAFE_VALUE.test(retryAfter)) headers['retry-after'] = retryAfter;
    body = JSON.stringify({ error: r.error });
  } else if (status < 200) {
    // 1xx is not a final status: written as one, it would leave the client waiting for another response.
    status = 502;
    headers['content-type'] = 'application/json';
    body = JSON.stringify({ error: { code: 'function_error', message: `the function answered with status ${r.status}, which is not a final HTTP status` } });
  } else {
    for (const k in r.headers) {
      const v = r.headers[k] as string;
      const name = k.toLowerCase();
      if (!DROP_RESPONSE.has(name) && TOKEN.test(name) && !UNSAFE_VALUE.test(v)) headers[name] = v;
    }
    body = r.body;
  }
  return { status, headers, body };
}
