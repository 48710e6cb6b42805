import { randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import uws from 'uWebSockets.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../common/logger.js';
import { HttpForwarder } from './http-forward.js';

const MAX_BODY = 2 * 1024 * 1024;

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}
type Upstream = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

interface Answer {
  status: number;
  rawHeaders: string[];
  body: Buffer;
}

/** All values of one response header, by case-insensitive name. */
const values = (a: Answer, name: string): string[] => a.rawHeaders.flatMap((k, i) => (i % 2 === 0 && k.toLowerCase() === name ? [a.rawHeaders[i + 1] as string] : []));

const listen = (app: uws.TemplatedApp): Promise<uws.us_listen_socket> =>
  new Promise((resolve, reject) => app.listen('127.0.0.1', 0, (ls) => (ls === false ? reject(new Error('uWS could not listen')) : resolve(ls))));

describe('HttpForwarder', () => {
  let upstream: Server;
  let upstreamPort = 0;
  let onRequest: Upstream = (_req, res) => res.end('default');
  const seen: Seen[] = [];
  let listenSocket: uws.us_listen_socket | false = false;
  let port = 0;
  /** A uWS app like the main thread's: node:http refuses raw non-ASCII bytes in a request target, uWS does not. */
  let mainSocket: uws.us_listen_socket | false = false;
  let mainPort = 0;
  const forwarders: HttpForwarder[] = [];
  let fwd: HttpForwarder;

  const forwarder = (o: { port?: number; timeoutMs?: number } = {}): HttpForwarder => {
    const f = new HttpForwarder({ host: '127.0.0.1', port: o.port ?? upstreamPort, maxBodyBytes: MAX_BODY, log: silentLogger(), ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }) });
    forwarders.push(f);
    return f;
  };

  /** A request through the uWS app (or to `o.port`), over a fresh connection, with the path sent byte for byte. */
  const call = (method: string, path: string, o: { headers?: Record<string, string | string[]>; body?: Buffer; port?: number; onSent?: (abort: () => void) => void } = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: o.port ?? port, method, path, headers: o.headers ?? {}, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(o.body);
      o.onSent?.(() => req.destroy());
    });

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        onRequest(req, res, body);
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
    fwd = forwarder();
    const app = uws.App();
    app.any('/*', (res, req) => fwd.forward(res, req));
    listenSocket = await listen(app);
    port = uws.us_socket_local_port(listenSocket);
    const main = uws.App();
    main.any('/*', (res, req) => {
      const seenByMain = JSON.stringify({ method: req.getMethod(), url: req.getUrl(), query: req.getQuery() ?? null });
      res.end(seenByMain);
    });
    mainSocket = await listen(main);
    mainPort = uws.us_socket_local_port(mainSocket);
  });

  beforeEach(() => {
    seen.length = 0;
    onRequest = (_req, res) => res.end('default');
    fwd = forwarders[0] as HttpForwarder;
  });

  afterAll(async () => {
    if (listenSocket !== false) uws.us_listen_socket_close(listenSocket);
    if (mainSocket !== false) uws.us_listen_socket_close(mainSocket);
    for (const f of forwarders) f.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  it('passes method, path and query on byte for byte', async () => {
    const paths = ['/v1/x%E0%2Fy/%2e%2E/z?a=%E0&b=%2F&c=%zz&&d', '/p?', '/p', '/?x??y'];
    for (const p of paths) expect((await call('PATCH', p)).status).toBe(200);
    expect(seen.map((s) => [s.method, s.url])).toEqual(paths.map((p) => ['PATCH', p]));
    await call('DELETE', '/v1/namespaces/default/functions/f%C3%A9');
    expect(seen[4]).toMatchObject({ method: 'DELETE', url: '/v1/namespaces/default/functions/f%C3%A9' });
  });

  it('gives a uWS upstream the very target it would have seen directly, raw non-ASCII bytes included', async () => {
    fwd = forwarder({ port: mainPort });
    // node:http strings are latin1, one char per byte: valid UTF-8 (é, ß) and a lone 0xE0.
    const latin1 = (b: Buffer): string => b.toString('latin1');
    const raw = `/raw/${latin1(Buffer.from('é/ü', 'utf8'))}/${latin1(Buffer.from([0xe0]))}?q=${latin1(Buffer.from('ß', 'utf8'))}&r=%E0`;
    for (const p of [raw, '/p?', '/p', '/a%2Fb?%zz']) {
      const direct = await call('POST', p, { port: mainPort });
      const forwarded = await call('POST', p);
      expect(forwarded.status).toBe(200);
      expect(forwarded.body.toString()).toBe(direct.body.toString());
    }
    expect(JSON.parse((await call('GET', raw)).body.toString())).toEqual({ method: 'get', url: '/raw/é/ü/\ufffd', query: 'q=ß&r=%E0' });
  });

  it("relays a uWS upstream's answer with one Date and one uWebSockets header", async () => {
    fwd = forwarder({ port: mainPort });
    const r = await call('GET', '/x');
    expect(r.status).toBe(200);
    expect(values(r, 'date')).toHaveLength(1);
    expect(values(r, 'uwebsockets')).toHaveLength(1);
    expect(values(r, 'content-length')).toEqual([String(r.body.length)]);
  });

  it('forwards end-to-end headers, drops hop-by-hop ones, and adds x-forwarded-for', async () => {
    const headers = {
      authorization: 'Bearer k',
      'x-custom': 'a b',
      'x-rep': ['1', '2'],
      host: 'public.example',
      connection: 'keep-alive, x-private',
      'x-private': 'only for the first hop',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      'proxy-authorization': 'Basic eA==',
      te: 'trailers',
      'x-forwarded-for': '203.0.113.7',
    };
    await call('GET', '/h', { headers });
    const h = seen[0]?.headers ?? {};
    expect(h).toMatchObject({ authorization: 'Bearer k', 'x-custom': 'a b', 'x-rep': '1, 2', 'x-forwarded-for': '203.0.113.7, 127.0.0.1' });
    for (const k of ['x-private', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te']) expect(h).not.toHaveProperty(k);
    expect(h.host).toBe(`127.0.0.1:${upstreamPort}`);
    expect(h.connection).toBe('keep-alive'); // the forwarder's own, to its upstream

    await call('GET', '/h2');
    expect(seen[1]?.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('answers a repeated Authorization with 400 without asking upstream, like a request served directly', async () => {
    const r = await call('GET', '/auth', { headers: { authorization: ['Bearer a', 'Bearer b'] } });
    expect(r.status).toBe(400);
    expect((JSON.parse(r.body.toString()) as { error: { code: string } }).error.code).toBe('bad_request');
    expect(seen).toHaveLength(0);
  });

  it('round-trips a binary body of about 1 MB', async () => {
    const payload = randomBytes(1024 * 1024 + 7);
    onRequest = (_req, res, body) => res.end(body);
    const r = await call('POST', '/echo', { headers: { 'content-type': 'application/octet-stream' }, body: payload });
    expect(r.status).toBe(200);
    expect(seen[0]?.headers['content-length']).toBe(String(payload.length));
    expect(seen[0]?.body.equals(payload)).toBe(true);
    expect(r.body.equals(payload)).toBe(true);
  });

  it('relays status, headers and body, with exactly one Date and no hop-by-hop headers', async () => {
    const utf8 = Buffer.from('é ü', 'utf8').toString('latin1'); // node:http writes header strings as latin1
    onRequest = (_req, res) => {
      res.writeHead(201, {
        'content-type': 'application/json',
        'x-call-id': 'c-1',
        'x-utf8': utf8,
        date: 'Thu, 01 Jan 1970 00:00:00 GMT',
        uWebSockets: '99',
        'keep-alive': 'timeout=5',
        'x-multi': ['a', 'b'],
      });
      res.end('{"ok":true}'); // chunked upstream; uWS sets its own Content-Length
    };
    const r = await call('PUT', '/created', { body: Buffer.from('{}') });
    expect(r.status).toBe(201);
    expect(r.body.toString()).toBe('{"ok":true}');
    expect(values(r, 'content-type')).toEqual(['application/json']);
    expect(values(r, 'x-call-id')).toEqual(['c-1']);
    expect(values(r, 'x-utf8')).toEqual([utf8]);
    expect(values(r, 'x-multi')).toEqual(['a, b']);
    expect(values(r, 'date')).toHaveLength(1);
    expect(values(r, 'date')[0]).not.toContain('1970');
    expect(values(r, 'uwebsockets')).not.toContain('99');
    expect(values(r, 'keep-alive')).toEqual([]);
    expect(values(r, 'transfer-encoding')).toEqual([]);
    expect(values(r, 'content-length')).toEqual(['11']);
  });

  it('sends HEAD upstream as HEAD and answers with headers only', async () => {
    onRequest = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-head': 'yes' });
      res.end('this body is never sent for HEAD');
    };
    const r = await call('HEAD', '/thing');
    expect(seen.map((s) => s.method)).toEqual(['HEAD']);
    expect(r.status).toBe(200);
    expect(values(r, 'x-head')).toEqual(['yes']);
    expect(r.body.length).toBe(0);
    // The connection is still in step: a GET on a fresh request gets its body.
    expect((await call('GET', '/thing')).body.toString()).toBe('this body is never sent for HEAD');
  });

  it('answers an oversize body with 413 without reaching upstream', async () => {
    const r = await call('POST', '/big', { body: Buffer.alloc(MAX_BODY + 1, 1) });
    expect(r.status).toBe(413);
    expect((JSON.parse(r.body.toString()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    expect(seen).toHaveLength(0);
    expect((await call('POST', '/fits', { body: Buffer.alloc(MAX_BODY, 1) })).status).toBe(200);
    expect(seen[0]?.body.length).toBe(MAX_BODY);
  });

  it('answers 502 with a JSON error when the management thread is down', async () => {
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    const gonePort = (gone.address() as AddressInfo).port;
    await new Promise((r) => gone.close(r));
    fwd = forwarder({ port: gonePort });
    const r = await call('GET', '/v1/namespaces');
    expect(r.status).toBe(502);
    expect(values(r, 'content-type')).toEqual(['application/json']);
    const err = (JSON.parse(r.body.toString()) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('chain_broken'); // errors.ts has no 'bad_gateway' yet
    expect(err.message).toMatch(/management thread did not answer GET \/v1\/namespaces: ECONNREFUSED/);
  });

  it('answers 502 when the management thread is too slow, and drops its request', async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((r) => (closed = r));
    onRequest = (_req, res) => res.on('close', () => !res.writableFinished && closed());
    fwd = forwarder({ timeoutMs: 200 });
    const r = await call('POST', '/slow', { body: Buffer.from('x') });
    expect(r.status).toBe(502);
    expect((JSON.parse(r.body.toString()) as { error: { message: string } }).error.message).toMatch(/no complete answer within 0.2 s/);
    await upstreamClosed;
  });

  it('drops the upstream request when the client goes away', async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((r) => (closed = r));
    let arrived!: () => void;
    const upstreamArrived = new Promise<void>((r) => (arrived = r));
    onRequest = (_req, res) => {
      res.on('close', () => !res.writableFinished && closed());
      arrived();
    };
    let abort = (): void => {};
    const answer = call('POST', '/hang', { body: Buffer.from('x'), onSent: (a) => (abort = a) });
    await upstreamArrived;
    abort();
    await expect(answer).rejects.toThrow();
    const outcome = await Promise.race([upstreamClosed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 3000))]);
    expect(outcome).toBe('closed');
  });
});
