import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { InvocationResult } from '../dataplane/types.js';
import type { Authenticator } from './auth.js';
import { Exchange, decodeSegment, readRequest } from './http-kit.js';

export interface InvokeDeps {
  auth: Authenticator;
  dispatcher: Dispatcher;
  log: Logger;
  priceClasses: readonly string[];
  maxInvokeBodyBytes: number;
}

/** Headers that describe the connection, not the message, or that carry our own credentials. */
const DROP_REQUEST = new Set(['authorization', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'te', 'trailer', 'host', 'content-length', 'x-price-class']);
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

/**
 * `POST /function/{fn}[.{ns}][/path]`: synchronous invocation. The caller's
 * namespace is the key's; admins may name another with `{fn}.{ns}`.
 */
export function mountInvokeApi(app: TemplatedApp, d: InvokeDeps): void {
  const handler = (res: HttpResponse, req: HttpRequest): void => {
    const ex = new Exchange(res, req.getMethod() === 'head');
    try {
      const info = readRequest(req, []);
      const who = d.auth.authenticate(info.headers['authorization']);
      const rest = info.url.slice('/function/'.length);
      const slash = rest.indexOf('/');
      const target = decodeSegment(slash === -1 ? rest : rest.slice(0, slash), 'the function name (/function/{name}[.{namespace}])');
      const subPath = (slash === -1 ? '/' : rest.slice(slash)) + (info.query === '' ? '' : `?${info.query}`);
      const dot = target.indexOf('.');
      const name = dot === -1 ? target : target.slice(0, dot);
      const ns = dot === -1 ? who.namespace : target.slice(dot + 1);
      if (name === '') throw new BatonError('bad_request', 'missing function name: POST /function/{name}');
      if (ns !== who.namespace && !who.admin) throw new BatonError('forbidden', `this API key belongs to namespace "${who.namespace}" and cannot invoke functions of "${ns}"`);
      const fn = d.dispatcher.functions.get(`${ns}/${name}`);
      if (fn === undefined) throw new BatonError('not_found', `function "${name}" not found in namespace "${ns}"`);
      const priceClass = info.headers['x-price-class'] ?? fn.record.spec.priceClass;
      if (!d.priceClasses.includes(priceClass)) {
        throw new BatonError('bad_request', `X-Price-Class: unknown price class "${priceClass}"; configured classes: ${d.priceClasses.join(', ')}`);
      }
      const headers = Object.create(null) as Record<string, string>;
      for (const k in info.headers) if (!DROP_REQUEST.has(k)) headers[k] = info.headers[k] as string;
      ex.readBody(info, d.maxInvokeBodyBytes).then(
        (body) => {
          if (ex.aborted) return;
          const call = d.dispatcher.invoke(fn, { method: info.method, path: subPath, headers, body, priceClass }, (r) => reply(ex, r));
          ex.whenAborted(() => d.dispatcher.cancel(call));
        },
        (e: unknown) => ex.error(e, d.log),
      );
    } catch (e) {
      ex.error(e, d.log);
    }
  };
  app.any('/function/*', handler);

  function reply(ex: Exchange, r: InvocationResult): void {
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
    headers['x-call-id'] = r.callId;
    headers['server-timing'] = serverTiming(r);
    // usually called from a worker's WebSocket message: write outside that callback
    ex.sendSoon(status, headers, body);
  }
}
