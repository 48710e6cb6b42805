import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Authenticator, Principal } from './auth.js';
import { Exchange, readRequest, type RequestInfo } from './http-kit.js';

export type Handler = (ex: Exchange, req: RequestInfo, who: Principal) => void | Promise<void>;
export type Method = 'get' | 'put' | 'post' | 'del';

/** Registers authenticated JSON routes on a uWS app, with 405 for other methods on a known path. */
export class RouteTable {
  private readonly patterns = new Map<string, Set<string>>();

  constructor(
    private readonly app: TemplatedApp,
    private readonly auth: Authenticator,
    private readonly log: Logger,
  ) {}

  add(method: Method, pattern: string, handler: Handler): void {
    const params = (pattern.match(/\/:/g) ?? []).length;
    this.app[method](pattern, (res: HttpResponse, req: HttpRequest) => this.run(res, req, params, handler));
    let methods = this.patterns.get(pattern);
    if (methods === undefined) {
      methods = new Set();
      this.patterns.set(pattern, methods);
      this.app.any(pattern, (res: HttpResponse, req: HttpRequest) => {
        const ex = new Exchange(res);
        const allowed = [...(this.patterns.get(pattern) ?? [])].join(', ');
        ex.error(new BatonError('method_not_allowed', `${req.getMethod().toUpperCase()} is not supported on ${req.getUrl()}; use ${allowed}`), undefined, { allow: allowed });
      });
    }
    methods.add(method === 'del' ? 'DELETE' : method.toUpperCase());
  }

  run(res: HttpResponse, req: HttpRequest, params: number, handler: Handler): void {
    const ex = new Exchange(res);
    const info = readRequest(req, params);
    try {
      const who = this.auth.authenticate(info.headers['authorization']);
      const p = handler(ex, info, who);
      if (p instanceof Promise) p.catch((e: unknown) => ex.error(e, this.log));
    } catch (e) {
      ex.error(e, this.log);
    }
  }
}
