/**
 * Forwarding from a scheduler core to the main thread.
 *
 * The control plane's public port is served by N scheduler-core threads (each
 * its own uWS app on the same port). Only the invocation path runs on the
 * cores; everything else (the management API, with its SQLite state) belongs
 * to the main thread, which listens on loopback on an internal port. A
 * request of the second kind that lands on a core is sent there by an
 * HttpForwarder and the answer relayed back unchanged, so a client cannot
 * tell which thread served it.
 *
 * Bodies are buffered both ways (management requests and answers are small),
 * which keeps abort handling and the 413 rule those of http-kit.
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { BatonError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { Exchange, readRequest, type RequestInfo } from '../controlplane/http-kit.js';

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus those this hop rewrites. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization']);
/** Not forwarded upstream: host names this hop; the body is sent whole, so a 100-continue handshake is this hop's business. */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'expect', 'content-length', 'x-forwarded-for']);
/** Not relayed back: uWS writes its own Date, Content-Length and uWebSockets marker, and a reply must carry each once. */
const NOT_RELAYED = new Set([...HOP_BY_HOP, 'content-length', 'date', 'uwebsockets']);

/**
 * errors.ts has no 'bad_gateway'; of its 502 codes this is the nearest in
 * meaning (an internal link whose answer cannot come). Swap it for
 * 'bad_gateway' once that code exists.
 */
const UPSTREAM_FAILED: ErrorCode = 'chain_broken';

const NON_ASCII = /[^\x00-\x7f]/;
/**
 * uWS hands us the request line decoded as UTF-8, while node:http writes it as
 * latin1: re-encode so the main thread's uWS gets the same bytes (and decodes
 * the same string) as if it had been sent there directly.
 */
const asLatin1 = (s: string): string => (NON_ASCII.test(s) ? Buffer.from(s, 'utf8').toString('latin1') : s);
/** The other way: node:http reads header bytes as latin1, uWS writes strings as UTF-8. */
const asUtf8 = (s: string): string => (NON_ASCII.test(s) ? Buffer.from(s, 'latin1').toString('utf8') : s);

export interface HttpForwarderOptions {
  /** The main thread's internal listener (loopback). */
  host: string;
  port: number;
  /** Request bodies past this many bytes get 413, as everywhere else. */
  maxBodyBytes: number;
  log: Logger;
  /** How long the main thread has to answer in full; default 120 s. */
  timeoutMs?: number;
}

export class HttpForwarder {
  private readonly agent: Agent;
  private readonly timeoutMs: number;

  constructor(private readonly o: HttpForwarderOptions) {
    this.timeoutMs = o.timeoutMs ?? 120_000;
    // Idle upstream sockets are dropped well before uWS's own 10 s idle timeout closes them,
    // so a request is never written to a socket the main thread is closing.
    this.agent = new Agent({ keepAlive: true, timeout: 5_000 });
  }

  /** Forward this request (call from inside the uWS route handler, synchronously). */
  forward(res: HttpResponse, req: HttpRequest): void {
    const ex = new Exchange(res, req.getMethod() === 'head');
    try {
      const info = readRequest(req, []);
      const query = req.getQuery() as string | undefined; // undefined: no '?' at all, '': a bare '?'
      const path = asLatin1(query === undefined ? info.url : `${info.url}?${query}`);
      const client = Buffer.from(res.getRemoteAddressAsText()).toString();
      ex.readBody(info, this.o.maxBodyBytes).then(
        (body) => {
          if (!ex.aborted) this.send(ex, info, path, upstreamHeaders(info.headers, client, body.length), body);
        },
        (e: unknown) => ex.error(e, this.o.log),
      );
    } catch (e) {
      ex.error(e, this.o.log);
    }
  }

  /** Destroy kept-alive upstream sockets (and any request still in flight). */
  close(): void {
    this.agent.destroy();
  }

  private send(ex: Exchange, info: RequestInfo, path: string, headers: Record<string, string>, body: Buffer): void {
    let settled = false;
    let upstream: ClientRequest | undefined;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      upstream?.destroy();
      if (ex.aborted) return; // the client left first; nobody to tell
      this.o.log.warn({ method: info.method, path: info.url, why }, 'forwarding to the management thread failed');
      ex.error(new BatonError(UPSTREAM_FAILED, `the control plane's management thread did not answer ${info.method} ${info.url}: ${why}`), this.o.log);
    };
    const timer = setTimeout(() => fail(`no complete answer within ${this.timeoutMs / 1000} s`), this.timeoutMs);
    ex.whenAborted(() => fail('the client closed the connection'));
    try {
      upstream = httpRequest({ host: this.o.host, port: this.o.port, method: info.method, path, headers, agent: this.agent });
    } catch (e) {
      // node:http refuses a few bytes uWS lets through (control characters in the target, say).
      settled = true;
      clearTimeout(timer);
      ex.error(new BatonError('bad_request', `the request cannot be passed on: ${(e as Error).message}`), this.o.log);
      return;
    }
    upstream.on('error', (e: NodeJS.ErrnoException) => fail(e.code === undefined ? e.message : `${e.code} (${e.message})`));
    upstream.on('response', (up: IncomingMessage) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('error', (e) => fail(`the answer broke off: ${e.message}`));
      up.on('close', () => fail('the connection closed before the answer was complete')); // a no-op after 'end'
      up.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ex.send(up.statusCode ?? 502, relayedHeaders(up.rawHeaders), Buffer.concat(chunks));
      });
    });
    upstream.end(body);
  }
}

/** The client's headers minus this hop's own, with the body's length and the client's address added. */
function upstreamHeaders(incoming: Record<string, string>, client: string, bodyLength: number): Record<string, string> {
  const dropped = new Set(NOT_FORWARDED);
  // Headers named in Connection are hop-by-hop too.
  for (const name of (incoming['connection'] ?? '').split(',')) dropped.add(name.trim().toLowerCase());
  const out: Record<string, string> = {};
  for (const k in incoming) if (!dropped.has(k)) out[k] = asLatin1(incoming[k] as string);
  const chain = incoming['x-forwarded-for'];
  out['x-forwarded-for'] = chain === undefined ? client : `${chain}, ${client}`;
  out['content-length'] = String(bodyLength);
  return out;
}

/** The main thread's headers minus hop-by-hop ones and those uWS writes itself; a repeated header becomes one list. */
function relayedHeaders(raw: readonly string[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase();
    if (NOT_RELAYED.has(k)) continue;
    const v = asUtf8(raw[i + 1] as string);
    const seen = out[k];
    out[k] = seen === undefined ? v : `${seen}, ${v}`;
  }
  return out;
}
