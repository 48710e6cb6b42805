import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Authenticator, Principal } from './auth.js';
import { Exchange, readRequest, type RequestInfo } from './http-kit.js';

export type Handler = (ex: Exchange, req: RequestInfo, who: Principal) => void | Promise<void>;
export type Method = 'get' | 'put' | 'post' | 'del';

/** What a `:param` of a route pattern is called in error messages (`:ns` → "namespace"). */
const PARAM_NAMES: Record<string, string> = { ns: 'namespace', fn: 'function name' };

/**
 * Registers authenticated JSON routes on a uWS app, with 405 for other methods
 * on a known path. A GET route answers HEAD too (headers only).
 */
export class RouteTable {
  private readonly patterns = new Map<string, Set<string>>();

  constructor(
    private readonly app: TemplatedApp,
    private readonly auth: Authenticator,
    private readonly log: Logger,
  ) {}

  add(method: Method, pattern: string, handler: Handler): void {
    const params = [...pattern.matchAll(/\/:([^/]+)/g)].map((m) => PARAM_NAMES[m[1] ?? ''] ?? m[1] ?? 'parameter');
    this.app[method](pattern, (res: HttpResponse, req: HttpRequest) => this.run(new Exchange(res), req, params, handler));
    if (method === 'get') this.app.head(pattern, (res: HttpResponse, req: HttpRequest) => this.run(new Exchange(res, true), req, params, handler));
    let methods = this.patterns.get(pattern);
    if (methods === undefined) {
      methods = new Set();
      this.patterns.set(pattern, methods);
      this.app.any(pattern, (res: HttpResponse, req: HttpRequest) => {
        const method = req.getMethod().toUpperCase();
        const ex = new Exchange(res, method === 'HEAD');
        const allowed = [...(this.patterns.get(pattern) ?? [])].join(', ');
        ex.error(new BatonError('method_not_allowed', `${method} is not supported on ${req.getUrl()}; use ${allowed}`), undefined, { allow: allowed });
      });
    }
    methods.add(method === 'del' ? 'DELETE' : method.toUpperCase());
    if (method === 'get') methods.add('HEAD');
  }

  private run(ex: Exchange, req: HttpRequest, params: readonly string[], handler: Handler): void {
    try {
      const info = readRequest(req, params);
      const who = this.auth.authenticate(info.headers['authorization']);
      const p = handler(ex, info, who);
      if (p instanceof Promise) p.catch((e: unknown) => ex.error(e, this.log));
    } catch (e) {
      ex.error(e, this.log);
    }
  }
}
