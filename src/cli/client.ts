import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

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

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  json<T>(): T;
}

export async function request(t: Target, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const h: Record<string, string> = { authorization: `Bearer ${t.apiKey}`, ...headers };
  let payload: string | Uint8Array | undefined;
  if (body instanceof Uint8Array) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(t.gateway + path, { method, headers: h, body: payload });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new CliError(`cannot reach the control plane at ${t.gateway}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  const buf = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    headers: res.headers,
    body: buf,
    json<T>(): T {
      return JSON.parse(buf.toString('utf8')) as T;
    },
  };
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
