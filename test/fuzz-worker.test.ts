import { join } from 'node:path';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng, type Rng } from '../src/policies/rng.js';
import { MAX_FRAME_BYTES } from '../src/protocol/codec.js';
import { CloseCode, PROTOCOL_VERSION, WORKER_PATH } from '../src/protocol/messages.js';
import { FIXTURES, api, deploy, pidAlive, startControlPlane, startWorker, stopAll, type CpHandle } from './helpers/cluster.js';
import { header, rawRequest } from './helpers/raw-http.js';

/**
 * Hostile frames on the worker WebSocket endpoint, with the real join token:
 * garbage, text frames, wrong field types, unknown `t`, frames about calls,
 * sandboxes and bundles that do not exist, a frame over the size limit, before
 * and after a valid `hello`. Every bad frame must close that connection only;
 * every well-formed frame about unknown things must be ignored (or answered, for
 * getBundle) with the connection kept. Reproduce with FUZZ_SEED=<printed seed>.
 */
const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const CONNECTIONS = Number(process.env['FUZZ_CONNECTIONS'] ?? 400);
const CONCURRENCY = 8;
const BOUND_MS = 5_000; // generous liveness bound for one connection's exchange

// The same wire format as the codec, but able to encode anything at all.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
const pack = (v: unknown): Buffer => Buffer.from(packr.pack(v));

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)] as T;
}

/** A value of a random type, often the wrong one. */
function junk(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 8 : 11)) {
    case 0:
      return pick(rng, ['', 'x', 'ü😀', 'a'.repeat(200), '__proto__', 'constructor', 'hello']);
    case 1:
      return pick(rng, [0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 31, 599, 600, 99]);
    case 2:
      return pick(rng, [NaN, Infinity, -Infinity]);
    case 3:
      return rng.next() < 0.5;
    case 4:
      return null;
    case 5:
      return undefined;
    case 6:
      return new Uint8Array(rng.int(64));
    case 7:
      return BigInt('12345678901234567890');
    case 8:
      return Array.from({ length: rng.int(4) }, () => junk(rng, depth + 1));
    case 9:
      return { ...(JSON.parse('{"__proto__":{"polluted":true}}') as object), a: junk(rng, depth + 1) }; // an own __proto__ key
    default:
      return Object.fromEntries(Array.from({ length: rng.int(4) }, (_, i) => [pick(rng, ['t', 'sandboxId', 'callId', 'hash', `k${i}`]), junk(rng, depth + 1)]));
  }
}

const id = (rng: Rng): string => `fz-${rng.int(1e9).toString(36)}`;

/** Frames a worker may send, well formed, about things that do not exist: to be ignored or answered. */
function harmless(rng: Rng): { frame: Record<string, unknown>; reply?: string } {
  switch (rng.int(6)) {
    case 0:
      return { frame: { t: 'heartbeat', freeMemoryMb: pick(rng, [0, 1, 64, 1e9]), sandboxes: rng.int(5) } };
    case 1:
      return { frame: { t: 'sandboxReady', sandboxId: id(rng), createMs: rng.int(1000) } };
    case 2:
      return { frame: { t: 'sandboxFailed', sandboxId: id(rng), error: { code: pick(rng, ['sandbox_failed', 'nonsense', '']), message: 'fuzz' } } };
    case 3:
      return { frame: { t: 'sandboxGone', sandboxId: id(rng), reason: 'fuzz' } };
    case 4:
      return { frame: { t: 'result', callId: id(rng), sandboxId: id(rng), status: 100 + rng.int(500), headers: { 'x-a': 'b' }, body: new Uint8Array(rng.int(100)), execMs: rng.int(10) } };
    default:
      return { frame: { t: 'getBundle', hash: pick(rng, ['0'.repeat(64), id(rng), 'x'.repeat(128)]) }, reply: 'bundle' };
  }
}

/** A frame that must close the connection with CloseCode.badFrame (after hello as well as before). */
function bad(rng: Rng, helloDone: boolean): { data: Buffer | string; binary: boolean; what: string } {
  const base = helloDone ? harmless(rng).frame : helloFrame(rng);
  switch (rng.int(8)) {
    case 0:
      return { data: Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256)).concat([0xc1])), binary: true, what: 'garbage bytes' };
    case 1:
      return { data: JSON.stringify(base), binary: false, what: 'a text frame' };
    case 2:
      return { data: pack(junk(rng)), binary: true, what: 'msgpack that is not a frame' };
    case 3:
      return { data: pack({ ...base, t: pick(rng, ['welcome', 'create', 'invoke', 'bundle', '', '__proto__', 'HELLO', 42, null]) }), binary: true, what: 'unknown t' };
    case 4: {
      const keys = Object.keys(base).filter((k) => k !== 't');
      const k = pick(rng, keys);
      let v = junk(rng);
      // a few junk values happen to be valid for some fields; make sure this one is not
      if (typeof v === typeof base[k] && !Number.isNaN(v)) v = [v];
      return { data: pack({ ...base, [k]: v }), binary: true, what: `${String(base['t'])}.${k} of the wrong type` };
    }
    case 5: {
      const keys = Object.keys(base).filter((k) => k !== 't');
      const k = pick(rng, keys);
      const rest = { ...base };
      delete rest[k];
      return { data: pack(rest), binary: true, what: `${String(base['t'])} without ${k}` };
    }
    case 6:
      return helloDone ? { data: pack(helloFrame(rng)), binary: true, what: 'a second hello' } : { data: pack(harmless(rng).frame), binary: true, what: 'a frame before hello' };
    default:
      return { data: Buffer.alloc(0), binary: true, what: 'an empty binary frame' };
  }
}

function helloFrame(rng: Rng, sandboxes: unknown[] = []): Record<string, unknown> {
  return { t: 'hello', protocol: PROTOCOL_VERSION, nodeId: `rogue-${id(rng)}`, name: `rogue-${rng.int(1000)}`, cores: 1 + rng.int(4), memoryMb: 64 + rng.int(1000), runtime: 'emulated', sandboxes };
}

interface Session {
  closed: Promise<{ code: number; reason: string; ms: number }>;
  frames: Record<string, unknown>[];
  ws: WebSocket;
  opened: Promise<void>;
}

function open(cp: CpHandle): Session {
  const ws = new WebSocket(cp.url.replace(/^http/, 'ws') + WORKER_PATH, { headers: { authorization: `Bearer ${cp.joinToken}` }, maxPayload: MAX_FRAME_BYTES * 2 });
  const frames: Record<string, unknown>[] = [];
  const t0 = performance.now();
  ws.on('message', (d: Buffer) => frames.push(packr.unpack(d) as Record<string, unknown>));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const closed = new Promise<{ code: number; reason: string; ms: number }>((resolve) => {
    ws.on('error', () => undefined);
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), ms: performance.now() - t0 }));
  });
  return { closed, frames, ws, opened };
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);
}

async function until(s: Session, pred: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > deadline || s.ws.readyState !== WebSocket.OPEN) return pred();
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

describe(`fuzz: hostile frames on the worker endpoint (FUZZ_SEED=${SEED})`, () => {
  let cp: CpHandle;
  const dirs: string[] = [];

  beforeAll(async () => {
    process.stdout.write(`fuzz-worker: seed ${SEED}, ${CONNECTIONS} connections (rerun with FUZZ_SEED=${SEED})\n`);
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    expect((await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'))).status).toBe(201);
    expect((await api(cp, 'POST', '/function/hello', 'warm')).text).toBe('hello warm');
  });
  afterAll(() => stopAll(dirs));

  it('closes only the connection that sent a bad frame, ignores frames about unknown things, and stays up', { timeout: 120_000 }, async () => {
    const rng = createRng(SEED);
    const failures: string[] = [];
    const counts: Record<string, number> = {};
    const count = (k: string): void => {
      counts[k] = (counts[k] ?? 0) + 1;
    };

    // Connections that never say hello are closed by the handshake timeout (10 s): in the background.
    const silent = Array.from({ length: 3 }, () => open(cp));

    const plans = Array.from({ length: CONNECTIONS }, (_, i) => {
      const withHello = rng.next() < 0.6;
      const adopt = withHello && rng.next() < 0.1 ? [{ sandboxId: `sb-${id(rng)}`, functionKey: pick(rng, ['default/hello', 'default/nope', 'x']), version: pick(rng, [0, 1, 2]), incarnation: pick(rng, ['fi_x', 'fi_nope']), inflight: rng.int(3) }] : [];
      const hello = withHello ? helloFrame(rng, adopt) : undefined;
      const before = !withHello || rng.next() < 0.3 ? bad(rng, false) : undefined;
      const harmlessFrames = withHello && before === undefined ? Array.from({ length: rng.int(8) }, () => harmless(rng)) : [];
      const after = withHello && before === undefined && rng.next() < 0.7 ? bad(rng, true) : undefined;
      return { i, hello, before, harmlessFrames, after };
    });

    let next = 0;
    const runOne = async (p: (typeof plans)[number]): Promise<void> => {
      const s = open(cp);
      const fail = (why: string): void => {
        failures.push(`#${p.i} ${why}`);
      };
      try {
        await s.opened;
      } catch (e) {
        fail(`could not connect: ${(e as Error).message}`);
        return;
      }
      if (p.before !== undefined) {
        // a bad first frame (or a hello after a bad frame would never be read)
        s.ws.send(p.before.data, { binary: p.before.binary });
        const c = await within(s.closed, BOUND_MS);
        count(`before hello: ${p.before.what}`);
        if (c === 'timeout') fail(`${p.before.what} before hello: still open after ${BOUND_MS} ms`);
        else if (c.code !== CloseCode.badFrame) fail(`${p.before.what} before hello: closed with ${c.code} ${c.reason}`);
        return;
      }
      s.ws.send(pack(p.hello));
      if (!(await until(s, () => s.frames.some((f) => f['t'] === 'welcome'), BOUND_MS))) {
        fail(`valid hello not welcomed: ${JSON.stringify(await within(s.closed, 10))}`);
        s.ws.terminate();
        return;
      }
      for (const h of p.harmlessFrames) {
        count(`after hello, ignored: ${String(h.frame['t'])}`);
        s.ws.send(pack(h.frame));
      }
      // a bundle request is answered, so it proves every frame before it was read and survived
      const probe = `probe-${p.i}`;
      s.ws.send(pack({ t: 'getBundle', hash: probe }));
      const answered = await until(s, () => s.frames.some((f) => f['t'] === 'bundle' && f['hash'] === probe), BOUND_MS);
      if (!answered) fail(`well-formed frames about unknown things closed the connection: ${JSON.stringify(await within(s.closed, 10))} after ${p.harmlessFrames.map((h) => JSON.stringify(h.frame).slice(0, 120)).join(' ')}`);
      const reply = s.frames.find((f) => f['t'] === 'bundle' && f['hash'] === probe) as { error?: { code?: string } } | undefined;
      if (answered && reply?.error?.code !== 'not_found') fail(`getBundle of an unknown hash answered ${JSON.stringify(reply)}`);
      if (p.after !== undefined && answered) {
        count(`after hello: ${p.after.what}`);
        s.ws.send(p.after.data, { binary: p.after.binary });
        const c = await within(s.closed, BOUND_MS);
        if (c === 'timeout') fail(`${p.after.what} after hello: still open after ${BOUND_MS} ms`);
        else if (c.code !== CloseCode.badFrame) fail(`${p.after.what} after hello: closed with ${c.code} ${c.reason}`);
        return;
      }
      s.ws.close(1000);
      await within(s.closed, BOUND_MS);
    };
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < plans.length) await runOne(plans[next++]!);
      }),
    );

    // a frame over the size limit, before and after hello: that connection is closed, nothing else
    for (const helloFirst of [false, true]) {
      const s = open(cp);
      await s.opened;
      if (helloFirst) {
        s.ws.send(pack(helloFrame(rng)));
        await until(s, () => s.frames.length > 0, BOUND_MS);
      }
      s.ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1));
      const c = await within(s.closed, 30_000);
      count('oversize frame');
      if (c === 'timeout') failures.push(`oversize frame (hello first: ${helloFirst}): still open`);
      else if (c.code !== 1009 && c.code !== 1006) failures.push(`oversize frame (hello first: ${helloFirst}): closed with ${c.code} ${c.reason}`);
    }

    for (const s of silent) {
      const c = await within(s.closed, 30_000);
      if (c === 'timeout' || c.code !== CloseCode.badFrame || !/no hello/.test(c.reason)) failures.push(`silent connection: ${JSON.stringify(c)}`);
    }

    process.stdout.write(`fuzz-worker: seed ${SEED}: ${JSON.stringify(counts)}\n`);
    if (failures.length > 0) process.stdout.write(`fuzz-worker: ${failures.length} failures (seed ${SEED}):\n  ${failures.slice(0, 15).join('\n  ')}\n`);
    expect(failures.slice(0, 5), `seed ${SEED}`).toEqual([]);

    // afterwards: alive, healthy, no fault caught by the process guard, and real calls work
    expect(cp.proc.exitCode).toBeNull();
    expect(pidAlive(cp.proc.pid!)).toBe(true);
    expect((await api(cp, 'GET', '/healthz')).status).toBe(200);
    expect((await api(cp, 'POST', '/function/hello', 'after the fuzz')).text).toBe('hello after the fuzz');
    const metrics = (await api(cp, 'GET', '/metrics')).text;
    expect(Number(/baton_worker_bad_frames_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(CONNECTIONS / 4);
    expect(metrics).toMatch(/baton_process_faults_total\{kind="uncaught_exception"\} 0/);
    expect(metrics).toMatch(/baton_process_faults_total\{kind="unhandled_rejection"\} 0/);
    expect(cp.output()).not.toMatch(/error handling a worker frame|internal error|uncaughtException|unhandledRejection/);
    const nodes = ((await api(cp, 'GET', '/v1/nodes')).body as { nodes: { name: string; state: string }[] }).nodes;
    expect(nodes.filter((n) => n.name.startsWith('rogue-') && n.state === 'ready')).toEqual([]);
  });

  it('a worker\'s answer cannot split the HTTP response: unsafe headers dropped, its Date dropped, a 1xx becomes 502', async () => {
    // a control plane whose only worker is ours, so every sandbox and call lands on it
    const lone = await startControlPlane();
    dirs.push(lone.dataDir);
    expect((await deploy(lone, 'evil', { runtime: 'http', command: ['/nonexistent/evil'] })).status).toBe(201);
    const rogue = open(lone);
    await rogue.opened;
    const answers = [
      { status: 200, headers: { 'x-ok': 'fine', 'X-Upper': 'kept', 'x-split': 'a\r\nset-cookie: pwned=1', 'x-nul': 'a\0b', 'bad name': 'v', 'x-evil\r\nset-cookie': 'pwned=2', Date: 'Thu, 01 Jan 1970 00:00:00 GMT' }, body: 'ok' },
      { status: 101, headers: { upgrade: 'websocket' }, body: 'switch' },
    ];
    rogue.ws.on('message', (d: Buffer) => {
      const f = packr.unpack(d) as { t: string; sandboxId?: string; callId?: string };
      if (f.t === 'create') rogue.ws.send(pack({ t: 'sandboxReady', sandboxId: f.sandboxId, createMs: 1 }));
      if (f.t === 'invoke') {
        const a = answers.shift()!;
        rogue.ws.send(pack({ t: 'result', callId: f.callId, sandboxId: f.sandboxId, status: a.status, headers: a.headers, body: Buffer.from(a.body), execMs: 1 }));
      }
    });
    rogue.ws.send(pack({ ...helloFrame(createRng(SEED)), runtime: 'process' }));
    await until(rogue, () => rogue.frames.some((f) => f['t'] === 'welcome'), BOUND_MS);

    const port = Number(new URL(lone.url).port);
    const call = `POST /function/evil HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${lone.apiKey}\r\nContent-Length: 0\r\n\r\n`;
    const first = await rawRequest(port, call, { expect: 1, timeoutMs: 10_000 });
    expect(first.garbled).toBeUndefined();
    const ok = first.responses[0]!;
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toBe('ok');
    expect(header(ok, 'x-ok')).toEqual(['fine']);
    expect(header(ok, 'x-upper')).toEqual(['kept']);
    expect(header(ok, 'set-cookie')).toEqual([]);
    expect(ok.headers.map(([k]) => k)).not.toEqual(expect.arrayContaining(['x-split', 'x-nul', 'bad name']));
    expect(header(ok, 'date')).toHaveLength(1);
    expect(header(ok, 'date')[0]).not.toContain('1970');

    const second = await rawRequest(port, call, { expect: 1, timeoutMs: 10_000 });
    const switched = second.responses[0]!;
    expect(switched.status).toBe(502);
    expect(JSON.parse(switched.body.toString())).toMatchObject({ error: { code: 'function_error' } });
    rogue.ws.close();
  });
});
