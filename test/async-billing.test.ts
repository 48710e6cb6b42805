import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, kill, startControlPlane, startWorker, stopAll, waitFor } from './helpers/cluster.js';
import { LinkProxy } from './helpers/proxy.js';

/** Async invocations, activation records, billing and budgets on a real cluster. */

interface Activation {
  id: string;
  namespace: string;
  function: string;
  priceClass: string;
  status: string;
  cpuSeconds: number;
  gbSeconds: number;
  cost: number;
  attempts: number;
  statusCode: number | null;
  async: boolean;
  parentId: string | null;
  worker: string | null;
  sandbox: string | null;
}

async function activation(cp: { url: string; apiKey: string }, id: string, ns = 'default', key?: string): Promise<Activation | undefined> {
  const r = await api(cp, 'GET', `/v1/namespaces/${ns}/activations/${id}`, undefined, key ?? cp.apiKey);
  return r.status === 200 ? (r.body as { activation: Activation }).activation : undefined;
}

describe('async invocations, activations, billing and budgets', () => {
  const dirs: string[] = [];
  const proxies: LinkProxy[] = [];
  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await stopAll(dirs);
  });

  it('20 async calls accepted, the control plane killed -9 right after the last 202: after a restart every call completes with its result', { timeout: 120_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const proxy = new LinkProxy(Number(new URL(cp.url).port));
    proxies.push(proxy);
    await proxy.start();
    dirs.push((await startWorker(cp, { controlPlane: proxy.url, args: ['--cores', '2'] })).stateDir);
    // each call takes a second on one of two sandboxes: most are still pending when the control plane dies
    await deploy(cp, 'echo', { runtime: 'node', handler: 'index.js', concurrency: 1, scale: { max: 2, keepAlive: '5m' }, timeout: '20s' }, join(FIXTURES, 'slow-echo'));
    const accepted = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await fetch(`${cp.url}/async-function/echo?ms=1000`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}` }, body: `n${i}` });
        expect(res.status).toBe(202);
        const id = res.headers.get('x-call-id') ?? '';
        expect(res.headers.get('location')).toBe(`/v1/namespaces/default/activations/${id}`);
        return { id, i };
      }),
    );
    const atKill = await Promise.all(accepted.map((a) => activation(cp, a.id)));
    await kill(cp.proc, 'SIGKILL');
    expect(atKill.filter((r) => r?.status !== 'success').length).toBeGreaterThan(10);
    const cp2 = await startControlPlane({ dataDir: cp.dataDir });
    proxy.retarget(Number(new URL(cp2.url).port));
    proxy.cut();
    const done = await waitFor(
      async () => {
        const recs = await Promise.all(accepted.map((a) => activation(cp2, a.id)));
        return recs.every((r) => r?.status === 'success') ? recs : undefined;
      },
      60_000,
      () => 'not every accepted call completed after the restart',
    );
    expect(done).toHaveLength(20);
    for (const { id, i } of accepted) {
      const r = await api(cp2, 'GET', `/v1/namespaces/default/activations/${id}/result`);
      expect(r.status).toBe(200);
      expect(r.text).toBe(`echo n${i}`);
      expect(r.headers.get('x-call-id')).toBe(id);
    }
    // each ended once: one final record per call, found in the listing
    const listed = ((await api(cp2, 'GET', '/v1/namespaces/default/activations?function=echo&limit=100')).body as { activations: Activation[] }).activations;
    for (const { id } of accepted) expect(listed.filter((a) => a.id === id)).toHaveLength(1);
    expect(listed.every((a) => a.async)).toBe(true);
  });

  it('a callback URL receives the result; the pending store is bounded (503 with Retry-After)', { timeout: 90_000 }, async () => {
    const got: { headers: IncomingMessage['headers']; body: string }[] = [];
    const sink = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        got.push({ headers: req.headers, body });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const port = (sink.address() as { port: number }).port;
    try {
      const cp = await startControlPlane({ args: ['--max-pending-async', '3'] });
      dirs.push(cp.dataDir);
      dirs.push((await startWorker(cp)).stateDir);
      await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', scale: { keepAlive: '5m' } }, join(FIXTURES, 'cp-hello'));
      await deploy(cp, 'slow', { runtime: 'node', handler: 'index.js', concurrency: 1, scale: { max: 1, keepAlive: '5m' }, timeout: '20s' }, join(FIXTURES, 'cp-sleep'));
      const res = await fetch(`${cp.url}/async-function/hello`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}`, 'x-callback-url': `http://127.0.0.1:${port}/done` }, body: 'callback' });
      expect(res.status).toBe(202);
      const id = res.headers.get('x-call-id');
      await waitFor(() => (got.length > 0 ? true : undefined), 20_000, () => 'the callback never came');
      expect(got[0]?.body).toBe('hello callback');
      expect(got[0]?.headers['x-call-id']).toBe(id);
      expect(got[0]?.headers['x-activation-status']).toBe('success');
      // a bad callback URL is refused up front
      const bad = await fetch(`${cp.url}/async-function/hello`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}`, 'x-callback-url': 'ftp://x' }, body: '' });
      expect(bad.status).toBe(400);
      // three slow calls fill the pending store; the fourth is refused, not queued
      const codes: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`${cp.url}/async-function/slow`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}` }, body: '3000' });
        codes.push(r.status);
        if (r.status === 503) expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
        await r.arrayBuffer();
      }
      expect(codes).toEqual([202, 202, 202, 503]);
    } finally {
      sink.close();
    }
  });

  it('usage after known CPU work matches within ±20 % and is priced by class; activation records carry the metering; tenants see only their own', { timeout: 90_000 }, async () => {
    const cp = await startControlPlane({ args: ['--price-classes', 'batch=0.5,standard=1,interactive=1.5,critical=2', '--memory-price', '0.25'] });
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp, { args: ['--cores', '1'] })).stateDir);
    const team = ((await api(cp, 'POST', '/v1/namespaces', { name: 'team' })).body as { apiKey: string }).apiKey;
    const other = ((await api(cp, 'POST', '/v1/namespaces', { name: 'other' })).body as { apiKey: string }).apiKey;
    await deploy(cp, 'burn', { runtime: 'node', handler: 'index.js', timeout: '30s', scale: { max: 1, keepAlive: '5m' } }, join(FIXTURES, 'spin'), 'team', team);
    const call = async (cls: string, ms: number): Promise<string> => {
      const res = await fetch(`${cp.url}/function/burn`, { method: 'POST', headers: { authorization: `Bearer ${team}`, 'x-price-class': cls }, body: String(ms) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      return res.headers.get('x-call-id') ?? '';
    };
    await call('standard', 1); // cold start out of the way
    const before = (await api(cp, 'GET', '/v1/namespaces/team/usage', undefined, team)).body as { byClass: Record<string, { cpuSeconds: number; cost: number; invocations: number }> };
    const ids = [await call('critical', 300), await call('critical', 300), await call('batch', 400)];
    await new Promise((r) => setTimeout(r, 1500)); // one flush of the ledger
    const usage = (await api(cp, 'GET', '/v1/namespaces/team/usage', undefined, team)).body as {
      namespace: string;
      cpuSeconds: number;
      gbSeconds: number;
      cost: number;
      invocations: number;
      byClass: Record<string, { invocations: number; cpuSeconds: number; gbSeconds: number; cost: number }>;
      byFunction: Record<string, { invocations: number; cpuSeconds: number }>;
    };
    expect(usage.namespace).toBe('team');
    const crit = usage.byClass['critical'];
    const batch = usage.byClass['batch'];
    expect(crit?.invocations).toBe(2);
    expect(batch?.invocations).toBe(1);
    expect(crit?.cpuSeconds).toBeGreaterThan(0.6 * 0.8);
    expect(crit?.cpuSeconds).toBeLessThan(0.6 * 1.2);
    expect(batch?.cpuSeconds).toBeGreaterThan(0.4 * 0.8);
    expect(batch?.cpuSeconds).toBeLessThan(0.4 * 1.2);
    // priced by class: CPU at the class's price, memory at one price for all
    expect(crit?.cost).toBeCloseTo((crit?.cpuSeconds ?? 0) * 2 + (crit?.gbSeconds ?? 0) * 0.25, 9);
    expect(batch?.cost).toBeCloseTo((batch?.cpuSeconds ?? 0) * 0.5 + (batch?.gbSeconds ?? 0) * 0.25, 9);
    expect(crit?.gbSeconds).toBeGreaterThan(0);
    expect(usage.byFunction['burn']?.invocations).toBe((before.byClass['standard']?.invocations ?? 0) + 3);
    // the records say the same, call by call
    const rec = await activation(cp, ids[0] as string, 'team', team);
    expect(rec).toMatchObject({ function: 'burn', priceClass: 'critical', status: 'success', statusCode: 200, async: false, parentId: null });
    expect(rec?.cpuSeconds).toBeGreaterThan(0.3 * 0.8);
    expect(rec?.cpuSeconds).toBeLessThan(0.3 * 1.2);
    expect(rec?.cost).toBeGreaterThan(0);
    expect(rec?.sandbox).toMatch(/^sb-/);
    // a sync call's result went to its caller
    expect((await api(cp, 'GET', `/v1/namespaces/team/activations/${ids[0]}/result`, undefined, team)).status).toBe(404);
    // another tenant sees none of it
    expect((await api(cp, 'GET', '/v1/namespaces/team/activations', undefined, other)).status).toBe(403);
    expect((await api(cp, 'GET', '/v1/namespaces/team/usage', undefined, other)).status).toBe(403);
    expect((await api(cp, 'GET', `/v1/namespaces/other/activations/${ids[0]}`, undefined, other)).status).toBe(404);
    const mine = ((await api(cp, 'GET', '/v1/namespaces/other/activations', undefined, other)).body as { activations: Activation[] }).activations;
    expect(mine).toEqual([]);
  });

  it('a namespace ahead of its budget\'s pace gets 429 with Retry-After on batch calls while its critical calls still run', { timeout: 90_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp, { args: ['--cores', '1'] })).stateDir);
    const key = ((await api(cp, 'POST', '/v1/namespaces', { name: 'spender' })).body as { apiKey: string }).apiKey;
    await deploy(cp, 'burn', { runtime: 'node', handler: 'index.js', timeout: '30s', scale: { max: 1, keepAlive: '5m' } }, join(FIXTURES, 'spin'), 'spender', key);
    const call = async (cls: string): Promise<Response> => fetch(`${cp.url}/function/burn`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'x-price-class': cls }, body: '200' });
    for (let i = 0; i < 2; i++) expect((await call('critical')).status).toBe(200);
    // a namespace key cannot set its own budget
    expect((await api(cp, 'PUT', '/v1/namespaces/spender/budget', { monthly: 1e9 }, key)).status).toBe(403);
    // calibrate: what share of the month has gone by (the pace per unit of budget)?
    const probe = ((await api(cp, 'PUT', '/v1/namespaces/spender/budget', { monthly: 1e9 })).body as { budget: { pace: number; spent: number } }).budget;
    const share = probe.pace / 1e9;
    expect(probe.spent).toBeGreaterThan(0);
    // a budget whose pace the spend has run 25 % ahead of: batch (tolerates +10 %) is throttled, critical (+85 %) is not
    const monthly = probe.spent / (1.25 * share);
    const set = ((await api(cp, 'PUT', '/v1/namespaces/spender/budget', { monthly })).body as { budget: { monthly: number; throttled: string[]; served: string[]; ratio: number } }).budget;
    expect(set.monthly).toBeCloseTo(monthly, 9);
    expect(set.throttled).toEqual(['batch']);
    expect(set.ratio).toBeCloseTo(1.25, 1);
    const refused = await call('batch');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const err = ((await refused.json()) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('budget_exceeded');
    expect(err.message).toContain(String(monthly).slice(0, 6));
    expect(err.message).toMatch(/spent/);
    const ok = await call('critical');
    expect(ok.status).toBe(200);
    // async calls are throttled at acceptance the same way
    expect((await fetch(`${cp.url}/async-function/burn`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'x-price-class': 'batch' }, body: '1' })).status).toBe(429);
    expect((await api(cp, 'GET', '/metrics')).text).toMatch(/baton_throttled_total\{namespace="spender",class="batch"\} [1-9]/);
    // lifting the budget lifts the throttle
    expect((await api(cp, 'PUT', '/v1/namespaces/spender/budget', { monthly: null })).status).toBe(200);
    expect((await call('batch')).status).toBe(200);
  });
});
