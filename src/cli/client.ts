import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { CliError } from './cli-error.js';

export { CliError } from './cli-error.js';

export interface ClientOptions {
  gateway?: string;
  apiKey?: string;
}

export interface Target {
  gateway: string;
  apiKey: string;
}

/** --gateway/--api-key, else BATON_GATEWAY/BATON_API_KEY, else ./.baton/credentials.json. */
export function resolveTarget(o: ClientOptions, cwd = process.cwd()): Target {
  // an empty variable counts as unset
  let gateway = o.gateway ?? (process.env['BATON_GATEWAY'] || undefined);
  let apiKey = o.apiKey ?? (process.env['BATON_API_KEY'] || undefined);
  const credsPath = join(cwd, '.baton', 'credentials.json');
  if ((gateway === undefined || apiKey === undefined) && existsSync(credsPath)) {
    try {
      const c = JSON.parse(readFileSync(credsPath, 'utf8')) as { gateway?: string; apiKey?: string };
      gateway ??= c.gateway;
      apiKey ??= c.apiKey;
    } catch (e) {
      throw new CliError(`${credsPath} is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (gateway === undefined) throw new CliError('no gateway: pass --gateway, set BATON_GATEWAY, or run `baton dev` in this directory');
  if (apiKey === undefined) throw new CliError('no API key: pass --api-key, set BATON_API_KEY, or run `baton dev` in this directory');
  return { gateway: normalizeGateway(gateway), apiKey };
}

/** `127.0.0.1:8080` means `http://127.0.0.1:8080`; anything that is not an http(s) URL is refused with the reason. */
export function normalizeGateway(raw: string): string {
  const text = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliError(`gateway "${raw}" is not a URL (expected http://HOST:PORT)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`gateway "${raw}": expected http:// or https://, got ${url.protocol}`);
  if (url.search !== '' || url.hash !== '') throw new CliError(`gateway "${raw}": expected http://HOST:PORT without a query or fragment`);
  return url.toString().replace(/\/+$/, '');
}

/** The response headers, read the way fetch's `Headers` are (names in any case). */
export interface ReplyHeaders {
  get(name: string): string | null;
}

export interface Reply {
  status: number;
  headers: ReplyHeaders;
  body: Buffer;
  json<T>(): T;
}

/**
 * One HTTP exchange with the control plane. This uses node:http rather than the
 * global fetch: touching fetch loads Node's bundled undici (about 40 ms on a
 * 2-core machine, more for its first request), node:http about 4 ms. A script
 * making one request took a median 265 ms from spawn to exit with fetch and
 * 120 ms with node:http, and every CLI command pays that once.
 */
export async function request(t: Target, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const h: Record<string, string> = { authorization: `Bearer ${t.apiKey}`, ...headers };
  let payload: Uint8Array | undefined;
  if (body instanceof Uint8Array) payload = body;
  else if (body !== undefined) {
    payload = Buffer.from(JSON.stringify(body));
    h['content-type'] ??= 'application/json';
  }
  if (payload !== undefined) h['content-length'] = String(payload.length);
  const url = new URL(t.gateway + path);
  const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  return new Promise<Reply>((resolve, reject) => {
    const req = send(url, { method, headers: h }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => reject(unreachable(t, e)));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: { get: (name) => headerValue(res.headers[name.toLowerCase()]) },
          body: buf,
          json<T>(): T {
            return JSON.parse(buf.toString('utf8')) as T;
          },
        });
      });
    });
    req.on('error', (e) => reject(unreachable(t, e)));
    req.end(payload);
  });
}

function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : v;
}

function unreachable(t: Target, e: Error): CliError {
  return new CliError(`cannot reach the control plane at ${t.gateway}: ${(e as NodeJS.ErrnoException).code ?? e.message}`);
}

/** Throw a CliError carrying the server's error code and message for any status >= 400. */
export function check(r: Reply): Reply {
  if (r.status < 400) return r;
  let msg = `HTTP ${r.status}`;
  try {
    const e = r.json<{ error?: { code?: string; message?: string } }>().error;
    if (e !== undefined) msg = `${e.message ?? ''} (${e.code ?? r.status})`;
  } catch {
    const text = r.body.toString('utf8').trim();
    if (text !== '') msg += `: ${text.slice(0, 500)}`;
  }
  throw new CliError(msg);
}

export async function call<T>(t: Target, method: string, path: string, body?: unknown): Promise<T> {
  return check(await request(t, method, path, body)).json<T>();
}

export async function whoami(t: Target): Promise<{ namespace: string; admin: boolean }> {
  return call(t, 'GET', '/v1/whoami');
}

/** The namespace named on the command line, else the one the API key belongs to. */
export async function namespaceOf(t: Target, explicit: string | undefined): Promise<string> {
  return explicit ?? (await whoami(t)).namespace;
}
