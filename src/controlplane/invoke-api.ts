import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { InvocationResult } from '../dataplane/types.js';
import type { Authenticator } from './auth.js';
import { Exchange, readRequest } from './http-kit.js';

export interface InvokeDeps {
  auth: Authenticator;
  dispatcher: Dispatcher;
  log: Logger;
  priceClasses: readonly string[];
  maxInvokeBodyBytes: number;
}

/** Headers that describe the connection, not the message, or that carry our own credentials. */
const DROP_REQUEST = new Set(['authorization', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'te', 'trailer', 'host', 'content-length', 'x-price-class']);
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'content-length', 'trailer']);

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
    const ex = new Exchange(res);
    const info = readRequest(req, 0);
    try {
      const who = d.auth.authenticate(info.headers['authorization']);
      const rest = info.url.slice('/function/'.length);
      const slash = rest.indexOf('/');
      const target = decodeURIComponent(slash === -1 ? rest : rest.slice(0, slash));
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
      const headers: Record<string, string> = {};
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
    if (r.error !== undefined) {
      headers['content-type'] = 'application/json';
      if (r.headers['retry-after'] !== undefined) headers['retry-after'] = r.headers['retry-after'];
    } else {
      for (const k in r.headers) if (!DROP_RESPONSE.has(k)) headers[k] = r.headers[k] as string;
    }
    headers['x-call-id'] = r.callId;
    headers['server-timing'] = serverTiming(r);
    const body = r.error !== undefined ? JSON.stringify({ error: r.error }) : r.body;
    // usually called from a worker's WebSocket message: write outside that callback
    ex.sendSoon(r.status, headers, body);
  }
}
