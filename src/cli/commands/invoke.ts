import { readFileSync } from 'node:fs';
import { CliError } from '../cli-error.js';
import { check, request, resolveTarget, type Reply } from '../client.js';
import type { Invocation } from '../command-table.js';
import { StatusLine } from '../status-line.js';

interface InvokeFlags {
  data?: string;
  method: string;
  header?: string[];
  priceClass?: string;
  verbose?: boolean;
  async?: boolean;
  callbackUrl?: string;
}

/** `-d data`, `-d @file`, `-d -` (stdin). */
export function readData(spec: string | undefined, stdin: () => Buffer = () => readFileSync(0)): Uint8Array | undefined {
  if (spec === undefined) return undefined;
  if (spec === '-') return stdin();
  if (spec.startsWith('@')) {
    try {
      return readFileSync(spec.slice(1));
    } catch (e) {
      throw new CliError(`-d ${spec}: cannot read file: ${(e as Error).message}`);
    }
  }
  return Buffer.from(spec);
}

/** `-H "Name: value"` into a header map with lower-case names. */
export function parseHeaders(lines: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of lines) {
    const i = h.indexOf(':');
    if (i <= 0) throw new CliError(`-H "${h}": expected "Name: value"`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return headers;
}

/** Show, on a terminal, how long a call has been waiting once it has taken a second. */
async function withWaitingLine<T>(what: string, work: Promise<T>): Promise<T> {
  const status = new StatusLine();
  if (!status.enabled) return work;
  const started = Date.now();
  const timer = setInterval(() => status.show(`${what}: waiting for the response, ${Math.round((Date.now() - started) / 1000)} s`), 1000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    status.clear();
  }
}

/** `baton invoke <fn>`: one synchronous call; the response body goes to stdout unchanged. */
export async function run({ args: [name], opts, globals }: Invocation<InvokeFlags, [fn: string]>): Promise<void> {
  const t = resolveTarget(globals);
  const headers = parseHeaders(opts.header ?? []);
  if (opts.priceClass !== undefined) headers['x-price-class'] = opts.priceClass;
  const body = readData(opts.data);
  if (opts.callbackUrl !== undefined && opts.async !== true) throw new CliError('--callback-url: only with --async');
  if (opts.async === true) {
    if (opts.callbackUrl !== undefined) headers['x-callback-url'] = opts.callbackUrl;
    const a = check(await request(t, opts.method.toUpperCase(), `/async-function/${encodeURIComponent(name)}`, body ?? new Uint8Array(), headers));
    const accepted = a.json<{ id: string; status: string; location: string }>();
    if (globals.output === 'json') process.stdout.write(`${JSON.stringify(accepted, null, 2)}\n`);
    else process.stdout.write(`${accepted.id}\n`);
    if (opts.verbose === true) process.stderr.write(`accepted: ${accepted.location}\nresult: baton activation result ${accepted.id}\n`);
    return;
  }
  const r: Reply = await withWaitingLine(name, request(t, opts.method.toUpperCase(), `/function/${encodeURIComponent(name)}`, body ?? new Uint8Array(), headers));
  if (opts.verbose === true) {
    process.stderr.write(`status: ${r.status}\ncall id: ${r.headers.get('x-call-id') ?? '-'}\nserver-timing: ${r.headers.get('server-timing') ?? '-'}\n`);
  }
  check(r);
  process.stdout.write(r.body);
  if (process.stdout.isTTY && r.body.length > 0 && r.body[r.body.length - 1] !== 10) process.stdout.write('\n');
}
