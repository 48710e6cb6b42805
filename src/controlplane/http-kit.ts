import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { BatonError, asBatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** What we keep of a uWS request: uWS requests die at the first await, so everything is copied up front. */
export interface RequestInfo {
  method: string;
  url: string;
  query: string;
  headers: Record<string, string>;
  params: string[];
}

/** Error replies longer than this lose their details and have the message cut. */
const MAX_ERROR_CHARS = 16 * 1024;

const STATUS_LINE = new Map<number, string>();
function statusLine(code: number): string {
  let s = STATUS_LINE.get(code);
  if (s === undefined) {
    s = `${code} ${STATUS_CODES[code] ?? 'Unknown'}`;
    STATUS_LINE.set(code, s);
  }
  return s;
}

/**
 * Percent-decode one path segment. A client can send any bytes, so a
 * malformed escape (`%E0`, `%zz`) is the client's mistake: 400 naming the
 * segment, never an exception out of a uWS callback.
 */
export function decodeSegment(raw: string, what: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BatonError('bad_request', `${what} in the path is not valid percent-encoding: "${raw.slice(0, 200)}"`);
  }
}

/**
 * Copy what we need of a uWS request. Call it inside a try: a malformed
 * percent-encoded route parameter or a repeated Authorization header throws
 * BatonError('bad_request').
 * `paramNames` name the route's `:params` in order, for the error message.
 */
export function readRequest(req: HttpRequest, paramNames: readonly string[]): RequestInfo {
  // No prototype: a header named `constructor` or `__proto__` is just a header.
  const headers = Object.create(null) as Record<string, string>;
  let repeatedAuth = false;
  req.forEach((k, v) => {
    const seen = headers[k];
    if (seen === undefined) headers[k] = v;
    else if (k === 'authorization') repeatedAuth = true;
    else headers[k] = `${seen}, ${v}`; // a repeated header is one comma-separated list (RFC 9110 §5.3)
  });
  // Which of two credentials counts differs between servers (Node keeps the first); refuse to guess.
  if (repeatedAuth) throw new BatonError('bad_request', 'more than one Authorization header; send exactly one');
  const params: string[] = [];
  for (let i = 0; i < paramNames.length; i++) params.push(decodeSegment(req.getParameter(i) ?? '', paramNames[i] ?? `parameter ${i + 1}`));
  return { method: req.getMethod().toUpperCase(), url: req.getUrl(), query: req.getQuery() ?? '', headers, params };
}

/**
 * Replies produced inside another socket's callback (a worker's WebSocket
 * message) cannot be corked there — uWS corks one socket at a time — and then
 * every header becomes its own syscall (measured: 160 µs per response instead
 * of a few). They are queued and written together from setImmediate, outside
 * any uWS callback, where each response is corked into one write.
 */
const pending: (() => void)[] = [];
let flushScheduled = false;
function flushPending(): void {
  flushScheduled = false;
  const batch = pending.splice(0);
  for (const write of batch) write();
}

/** One HTTP exchange on uWS: abort-safe writes, bounded body reading, JSON and error replies. */
export class Exchange {
  aborted = false;
  responded = false;
  private onAbort: (() => void) | undefined;
  private onBodyAbort: (() => void) | undefined;
  /** Close the connection after the reply: the rest of the request body is not worth reading. */
  private closeAfterReply = false;

  /** `head`: the request was HEAD, so replies carry headers only (a body would desync the connection). */
  constructor(
    readonly res: HttpResponse,
    private readonly head = false,
  ) {
    res.onAborted(() => {
      this.aborted = true;
      this.onBodyAbort?.();
      this.onAbort?.();
    });
  }

  whenAborted(cb: () => void): void {
    this.onAbort = cb;
  }

  /**
   * Read the whole body, failing with 413 past `limit` bytes. An oversize body
   * is still drained (up to a hard cap) so the client gets the 413 on a live
   * connection instead of a broken pipe; past the cap the connection is closed
   * after the 413. Rejects if the client goes away before the body is complete
   * (a declared body that never arrives ends with uWS's idle timeout).
   */
  readBody(req: RequestInfo, limit: number): Promise<Buffer> {
    // uWS closes the connection itself on a Content-Length that is not a plain decimal,
    // so a value that reaches us is digits (or absent: no body, or chunked).
    const declared = Number(req.headers['content-length'] ?? '0') || 0;
    const hardCap = Math.max(limit * 4, 64 * 1024 * 1024);
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const tooLarge = (): BatonError => new BatonError('payload_too_large', `request body of ${Math.max(size, declared)} bytes exceeds the limit of ${limit} bytes`);
      if (this.aborted) {
        reject(new BatonError('bad_request', 'the client closed the connection before sending the body'));
        return;
      }
      if (declared > hardCap) {
        this.closeAfterReply = true;
        reject(tooLarge());
        return;
      }
      this.onBodyAbort = () => reject(new BatonError('bad_request', `the client closed the connection after ${size} bytes of the body`));
      this.res.onData((chunk, isLast) => {
        if (size > hardCap) return;
        size += chunk.byteLength;
        if (size > hardCap) {
          this.closeAfterReply = true;
          reject(tooLarge());
          return;
        }
        if (size <= limit && declared <= limit) chunks.push(Buffer.from(chunk.slice(0)));
        if (!isLast) return;
        this.onBodyAbort = undefined;
        if (size > limit || declared > limit) reject(tooLarge());
        else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      });
    });
  }

  send(status: number, headers: Record<string, string>, body: Uint8Array | string): void {
    if (this.aborted || this.responded) return;
    this.responded = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const k in headers) {
        const v = headers[k];
        if (v !== undefined && k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') this.res.writeHeader(k, v);
      }
      this.res.end(this.head ? undefined : body, this.closeAfterReply);
    });
  }

  /** Like send, but from outside the current uWS callback (see flushPending). */
  sendSoon(status: number, headers: Record<string, string>, body: Uint8Array | string): void {
    pending.push(() => this.send(status, headers, body));
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushPending);
    }
  }

  json(status: number, value: unknown, headers: Record<string, string> = {}): void {
    this.send(status, { ...headers, 'content-type': 'application/json' }, JSON.stringify(value));
  }

  error(e: unknown, log?: Logger, extraHeaders: Record<string, string> = {}): void {
    const err = asBatonError(e);
    if (err.code === 'internal') log?.error({ err: e }, 'internal error while serving a request');
    const headers: Record<string, string> = { ...extraHeaders };
    if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
    let body = JSON.stringify({ error: err.toWire() });
    if (body.length > MAX_ERROR_CHARS) {
      // A message built from the client's input (every invalid element of a long array) is cut, not echoed back whole.
      const message = `${err.message.slice(0, MAX_ERROR_CHARS / 4)}… (${err.message.length} characters in all)`;
      body = JSON.stringify({ error: { code: err.code, message } });
    }
    this.send(err.status, { ...headers, 'content-type': 'application/json' }, body);
  }
}

export function parseJson(body: Buffer, what = 'request body'): unknown {
  if (body.length === 0) throw new BatonError('bad_request', `${what} is empty; expected JSON`);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (e) {
    throw new BatonError('bad_request', `${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Close every socket of a uWS app, listeners and connections alike (a worker
 * thread cannot end while uWS holds one). The native binding has `close`;
 * its type declarations do not list it.
 */
export function closeApp(app: TemplatedApp): void {
  (app as unknown as { close(): void }).close();
}
