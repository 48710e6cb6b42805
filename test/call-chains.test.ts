import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../src/protocol/codec.js';
import type { ControlFrame, WorkerFrame } from '../src/protocol/messages.js';
import { ownerCore } from '../src/protocol/shard.js';
import { FIXTURES, api, deploy, sandboxes, startControlPlane, startWorker, stopAll, waitFor, type CpHandle } from './helpers/cluster.js';
import { HandWorker } from './helpers/hand-worker.js';
import { LinkProxy } from './helpers/proxy.js';

/**
 * Call chains (`ctx.invoke`) on a real cluster whose only worker has one
 * core: every chain here has a parent holding that core while its child needs
 * one, so each of these tests would hang (and fail with 504 after the wait
 * limit) if a waiting parent kept its core.
 */

const CHAIN = join(FIXTURES, 'chain');

interface Described {
  status: number;
  headers: Record<string, string>;
  body: string;
}
interface Me {
  callId: string;
  parentId: string | null;
  priceClass: string;
}
interface Called {
  me: Me;
  got: Described;
}
interface WireErrorBody {
  error: { code: string; message: string };
}

const text = (d: Described): string => Buffer.from(d.body, 'base64').toString();
const json = <T>(d: Described): T => JSON.parse(text(d)) as T;

describe('call chains on a one-core worker', () => {
  let cp: CpHandle;
  const dirs: string[] = [];

  async function fn(name: string, spec: Record<string, unknown> = {}, ns = 'default', key?: string): Promise<void> {
    const r = await deploy(cp, name, { runtime: 'node', handler: 'index.js', scale: { max: 4, keepAlive: '10m' }, ...spec }, CHAIN, ns, key);
    expect(r.status, r.text).toBe(201);
  }

  async function call(name: string, body: unknown, headers: Record<string, string> = {}, key = cp.apiKey): Promise<{ status: number; body: unknown; callId: string | null }> {
    const res = await fetch(`${cp.url}/function/${name}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const t = await res.text();
    let parsed: unknown = t;
    try {
      parsed = JSON.parse(t);
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed, callId: res.headers.get('x-call-id') };
  }

  beforeAll(async () => {
    // a deadlocked chain fails after the wait limit instead of hanging the suite
    cp = await startControlPlane({ args: ['--max-wait', '10s'] });
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp, { args: ['--cores', '1'] })).stateDir);
    await fn('callee', { priceClass: 'batch' });
    await fn('caller', { priceClass: 'critical' });
  }, 60_000);
  afterAll(() => stopAll(dirs));

  it('a critical caller makes its batch callee run at critical; the callee sees its parent call', { timeout: 60_000 }, async () => {
    // the callee has no sandbox yet: the control plane must place one on the core its caller holds
    expect(await sandboxes(cp, 'callee')).toEqual([]);
    const r = await call('caller', { op: 'call', target: 'callee', body: { op: 'whoami' } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const { me, got } = r.body as Called;
    expect(me).toMatchObject({ priceClass: 'critical', parentId: null, callId: r.callId });
    expect(got.status).toBe(200);
    const child = json<Me>(got);
    expect(child.priceClass).toBe('critical');
    expect(child.parentId).toBe(r.callId);
    expect(child.callId).not.toBe(r.callId);
    expect(got.headers['x-call-id']).toBe(child.callId);
    // the activation record of the child names its parent, and its class
    const rec = await api(cp, 'GET', `/v1/namespaces/default/activations/${child.callId}`);
    expect(rec.status, rec.text).toBe(200);
    expect((rec.body as { activation: unknown }).activation).toMatchObject({ function: 'callee', parentId: r.callId, priceClass: 'critical' });

    const direct = await call('callee', { op: 'whoami' });
    expect(direct.status).toBe(200);
    expect(direct.body).toMatchObject({ priceClass: 'batch', parentId: null });
  });

  it('the class is the higher of the caller\'s and the one asked for; an unknown one is a 400', { timeout: 60_000 }, async () => {
    const asked = async (priceClass?: string): Promise<Described> => {
      const r = await call('caller', { op: 'call', target: 'callee', body: { op: 'whoami' }, opts: priceClass === undefined ? {} : { priceClass } }, { 'x-price-class': 'batch' });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect((r.body as Called).me.priceClass).toBe('batch');
      return (r.body as Called).got;
    };
    expect(json<Me>(await asked('critical')).priceClass).toBe('critical');
    expect(json<Me>(await asked('standard')).priceClass).toBe('standard');
    expect(json<Me>(await asked()).priceClass).toBe('batch');
    // asking for less than the caller's class does not lower it
    const r = await call('caller', { op: 'call', target: 'callee', body: { op: 'whoami' }, opts: { priceClass: 'batch' } });
    expect(json<Me>((r.body as Called).got).priceClass).toBe('critical');
    const bad = await asked('platinum');
    expect(bad.status).toBe(400);
    expect(json<WireErrorBody>(bad).error.code).toBe('bad_request');
    expect(json<WireErrorBody>(bad).error.message).toContain('"platinum"');
  });

  it('the callee\'s response comes back intact; method, path and headers go through, credentials do not', { timeout: 60_000 }, async () => {
    const bytes = [0, 1, 2, 127, 128, 254, 255];
    const r = await call('caller', { op: 'call', target: 'callee', body: { op: 'answer', status: 418, headers: { 'x-custom': 'yes', 'content-type': 'application/x-thing' }, bytes } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const got = (r.body as Called).got;
    expect(got.status).toBe(418);
    expect(got.headers['x-custom']).toBe('yes');
    expect(got.headers['content-type']).toBe('application/x-thing');
    expect([...Buffer.from(got.body, 'base64')]).toEqual(bytes);

    const opts = { method: 'PUT', path: '/sub/path?x=1', headers: { 'x-test': 't', authorization: `Bearer ${cp.apiKey}` } };
    const seen = json<{ method: string; path: string; headers: Record<string, string> }>(((await call('caller', { op: 'call', target: 'callee', body: { op: 'whoami' }, opts })).body as Called).got);
    expect(seen.method).toBe('PUT');
    expect(seen.path).toBe('/sub/path?x=1');
    expect(seen.headers['x-test']).toBe('t');
    expect(seen.headers['content-type']).toBe('application/json');
    expect(seen.headers['authorization']).toBeUndefined();

    const thrown = ((await call('caller', { op: 'call', target: 'callee', body: { op: 'throw' } })).body as Called).got;
    expect(thrown.status).toBe(500);
    expect(json<WireErrorBody>(thrown).error).toMatchObject({ code: 'function_error' });
    expect(json<WireErrorBody>(thrown).error.message).toContain('thrown by the callee');

    const missing = ((await call('caller', { op: 'call', target: 'nonexistent', body: {} })).body as Called).got;
    expect(missing.status).toBe(404);
    expect(json<WireErrorBody>(missing).error.code).toBe('not_found');
  });

  it('several chain calls from one call at once each come back to it', { timeout: 60_000 }, async () => {
    const r = await call('caller', { op: 'fanout', targets: ['callee', 'callee', 'callee'] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const got = (r.body as { got: Me[] }).got;
    expect(got).toHaveLength(3);
    for (const child of got) expect(child).toMatchObject({ parentId: r.callId, priceClass: 'critical' });
    expect(new Set(got.map((c) => c.callId)).size).toBe(3);
  });

  it('a chain stays in its namespace, whichever key made the first call', { timeout: 60_000 }, async () => {
    const tenant = await api(cp, 'POST', '/v1/namespaces', { name: 'tenant' });
    expect(tenant.status).toBe(201);
    const tenantKey = (tenant.body as { apiKey: string }).apiKey;
    expect((await api(cp, 'POST', '/v1/namespaces', { name: 'other' })).status).toBe(201);
    await fn('chain', {}, 'tenant', tenantKey);
    await fn('secret', {}, 'other');

    const qualified = await call('chain', { op: 'call', target: 'secret.other', body: { op: 'whoami' } }, {}, tenantKey);
    expect(qualified.status).toBe(200);
    const forbidden = (qualified.body as Called).got;
    expect(forbidden.status).toBe(403);
    expect(json<WireErrorBody>(forbidden).error.code).toBe('forbidden');
    expect(json<WireErrorBody>(forbidden).error.message).toContain('"other"');

    const unqualified = ((await call('chain', { op: 'call', target: 'secret', body: { op: 'whoami' } }, {}, tenantKey)).body as Called).got;
    expect(unqualified.status).toBe(404);
    expect(json<WireErrorBody>(unqualified).error.message).toContain('namespace "tenant"');

    // the admin key may name any namespace at the gateway, but a chain stays where its call runs
    const byAdmin = ((await call('chain.tenant', { op: 'call', target: 'secret.other', body: { op: 'whoami' } })).body as Called).got;
    expect(byAdmin.status).toBe(403);
    expect(await sandboxes(cp, 'other/secret')).toEqual([]);
  });

  it('recursion stops at the depth limit with chain_too_deep, and the control plane stays healthy', { timeout: 90_000 }, async () => {
    // one sandbox runs the whole chain: 17 calls at once in one runner, each waiting for the next
    await fn('deep', { concurrency: 32, scale: { max: 1, keepAlive: '10m' } });
    const r = await call('deep', { op: 'recurse', self: 'deep', level: 0 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const out = r.body as { deepest: number; refused: { status: number } & WireErrorBody };
    expect(out.deepest).toBe(16);
    expect(out.refused.status).toBe(400);
    expect(out.refused.error.code).toBe('chain_too_deep');
    expect(out.refused.error.message).toContain('limit of 16');
    expect((await api(cp, 'GET', '/healthz')).status).toBe(200);
    expect((await call('callee', { op: 'whoami' })).status).toBe(200);
    expect(await sandboxes(cp, 'deep')).toHaveLength(1);
  });

  it('a sandbox may have 100 chain calls waiting at once; the next is refused with 429', { timeout: 90_000 }, async () => {
    await fn('sleeper', { concurrency: 128, scale: { max: 1, keepAlive: '10m' } });
    await fn('flood', { timeout: '60s' });
    const r = await call('flood', { op: 'flood', n: 101, target: 'sleeper', body: { op: 'sleep', ms: 3000 } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const outcomes = (r.body as { outcomes: (number | string)[] }).outcomes;
    expect(outcomes.filter((o) => o === 200)).toHaveLength(100);
    expect(outcomes.filter((o) => o === 429)).toHaveLength(1);
  });

  it('a chain call still out when its caller ends is rejected with chain_broken', { timeout: 60_000 }, async () => {
    await fn('dangler', { concurrency: 4, scale: { max: 1, keepAlive: '10m' } });
    const first = await call('dangler', { op: 'dangle', target: 'callee', body: { op: 'sleep', ms: 1500 } });
    expect(first.body).toEqual({ started: true });
    const report = await call('dangler', { op: 'report' });
    const dangling = (report.body as { dangling: { code: string; message: string } }).dangling;
    expect(dangling.code).toBe('chain_broken');
    expect(dangling.message).toContain('ended before the answer came');
  });

  it('a function cannot make chain calls for a call that does not run in its sandbox', { timeout: 60_000 }, async () => {
    const r = await call('caller', { op: 'forge' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ status: 502, error: { code: 'chain_broken' } });
  });
});

describe('call chains when the worker loses its link', () => {
  const dirs: string[] = [];
  let proxy: LinkProxy | undefined;
  afterAll(async () => {
    await proxy?.stop();
    await stopAll(dirs);
  });

  it('a chain call waiting for its answer is rejected with chain_broken', { timeout: 90_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    proxy = new LinkProxy(Number(new URL(cp.url).port));
    await proxy.start();
    const w = await startWorker(cp, { controlPlane: proxy.url, args: ['--cores', '1'] });
    dirs.push(w.stateDir);
    for (const name of ['parent', 'slow']) {
      expect((await deploy(cp, name, { runtime: 'node', handler: 'index.js', concurrency: 4, scale: { max: 1, keepAlive: '10m' } }, CHAIN)).status).toBe(201);
    }
    const pending = api(cp, 'POST', '/function/parent', JSON.stringify({ op: 'await-remember', target: 'slow', body: { op: 'sleep', ms: 5000 } }));
    // the child runs: the parent is waiting for it
    await waitFor(async () => ((await sandboxes(cp, 'slow'))[0]?.inflight ?? 0) > 0 || undefined, 20_000, () => `the child never ran:\n${w.output()}`);
    proxy.cut();
    const lost = await pending;
    expect(lost.status).toBe(502);
    // the worker comes back with the same sandbox, which remembers how its chain call ended
    const report = await waitFor(async () => {
      const r = await api(cp, 'POST', '/function/parent', JSON.stringify({ op: 'report' }));
      return r.status === 200 ? r : undefined;
    }, 20_000, () => `the worker did not come back:\n${w.output()}`);
    const dangling = (report.body as { dangling: { code: string; message: string } | null }).dangling;
    expect(dangling?.code).toBe('chain_broken');
    expect(dangling?.message).toContain('connection to the control plane was lost');
  });
});

describe('call chains on the worker link', () => {
  const dirs: string[] = [];
  const hands: HandWorker[] = [];
  afterAll(async () => {
    for (const h of hands) h.close();
    await stopAll(dirs);
  });

  it('a worker can make chain calls only from calls running on it', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const a = new HandWorker(cp, 'a');
    const b = new HandWorker(cp, 'b');
    hands.push(a, b);
    await a.join();
    await b.join();
    expect((await deploy(cp, 'f', { runtime: 'node', handler: 'index.js', concurrency: 4 }, CHAIN)).status).toBe(201);
    const client = api(cp, 'POST', '/function/f', '{}');
    client.catch(() => undefined); // if a step below fails, its error is the one reported, not this call's cut socket
    // whichever hand worker is asked for the sandbox runs the call
    const owner = await waitFor(() => [a, b].find((h) => h.frames.some((r) => r.frame.t === 'create')), 15_000, () => 'no sandbox was placed');
    const stranger = owner === a ? b : a;
    // the sandbox and its calls travel on the data link of the core that owns the function
    const fLink = ownerCore('default/f', owner.cores);
    const create = await owner.next('create', () => true, 15_000, fLink);
    owner.send({ t: 'sandboxReady', sandboxId: create.sandboxId, createMs: 1 });
    const inv = await owner.next('invoke', () => true, 15_000, fLink);
    const frame = (reqId: number, over: Partial<Extract<WorkerFrame, { t: 'call' }>> = {}): Extract<WorkerFrame, { t: 'call' }> => ({
      t: 'call',
      reqId,
      parentCallId: inv.callId,
      function: 'f',
      method: 'POST',
      path: '/',
      headers: {},
      body: new Uint8Array(),
      ...over,
    });
    const call = (w: HandWorker, reqId: number, over: Partial<Extract<WorkerFrame, { t: 'call' }>> = {}): void => w.send(frame(reqId, over));
    const answerOf = (w: HandWorker, reqId: number): Promise<Extract<ControlFrame, { t: 'callResult' }>> => w.next('callResult', (f) => f.reqId === reqId, 15_000, w.linkOf(frame(reqId)));

    // the stranger never saw the call: its frame goes on its link 0, and whichever core that is refuses it;
    // so does every other core, the one running the call included
    call(stranger, 1);
    expect(await answerOf(stranger, 1)).toMatchObject({ status: 502, error: { code: 'chain_broken' } });
    for (let k = 1; k < stranger.cores; k++) {
      stranger.sendRaw(k, encodeFrame(frame(10 + k)));
      expect(await stranger.next('callResult', (f) => f.reqId === 10 + k, 15_000, k)).toMatchObject({ status: 502, error: { code: 'chain_broken' } });
    }
    expect(owner.linkOf(frame(2))).toBe(fLink);
    call(owner, 2, { function: 'f.other' });
    expect(await answerOf(owner, 2)).toMatchObject({ status: 403, error: { code: 'forbidden' } });
    // from the owner, but on the link of a core that does not run the call: refused there
    for (let k = 0; k < owner.cores; k++) {
      if (k === fLink) continue;
      owner.sendRaw(k, encodeFrame(frame(100 + k)));
      expect(await owner.next('callResult', (f) => f.reqId === 100 + k, 15_000, k)).toMatchObject({ status: 502, error: { code: 'chain_broken' } });
    }
    // accepted from the owner: the child is dispatched, carrying its parent
    call(owner, 3);
    const child = await owner.next('invoke', (f) => f.parentId === inv.callId, 15_000, fLink);
    owner.send({ t: 'result', callId: child.callId, sandboxId: child.sandboxId, status: 200, headers: { 'x-child': '1' }, body: new TextEncoder().encode('from the child'), execMs: 1 });
    const answer = await answerOf(owner, 3);
    expect(answer).toMatchObject({ status: 200, callId: child.callId, headers: { 'x-child': '1' } });
    expect(new TextDecoder().decode(answer.body)).toBe('from the child');

    owner.send({ t: 'result', callId: inv.callId, sandboxId: inv.sandboxId, status: 200, headers: {}, body: new TextEncoder().encode('parent done'), execMs: 1 });
    expect((await client).text).toBe('parent done');
    // the call has ended: nobody can make chain calls from it now
    call(owner, 4);
    expect(await answerOf(owner, 4)).toMatchObject({ status: 502, error: { code: 'chain_broken' } });
    // refusals are answers, not protocol errors: every link of both is still up
    expect(a.up() && b.up()).toBe(true);
    expect([...a.undecodable, ...b.undecodable]).toEqual([]);
  });
});
