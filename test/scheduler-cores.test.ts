import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { ownerCore } from '../src/protocol/shard.js';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, waitFor, type CpHandle } from './helpers/cluster.js';

const CORES = 2;

/** `count` function names, half of them owned by each scheduler core. */
function namesOnEveryCore(prefix: string, count: number): string[] {
  const out: string[] = [];
  const per = new Array<number>(CORES).fill(0);
  for (let i = 0; out.length < count; i++) {
    const name = `${prefix}-${i}`;
    const owner = ownerCore(`default/${name}`, CORES);
    if ((per[owner] ?? 0) >= count / CORES) continue;
    per[owner] = (per[owner] ?? 0) + 1;
    out.push(name);
  }
  return out;
}

/** A name whose function the given core owns. */
function nameOn(core: number, prefix: string): string {
  for (let i = 0; ; i++) if (ownerCore(`default/${prefix}-${i}`, CORES) === core) return `${prefix}-${i}`;
}

async function metric(cp: CpHandle, name: string): Promise<number> {
  const text = (await api(cp, 'GET', '/metrics')).text;
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** POST over a pool of keep-alive connections (the kernel spreads them over the cores' listeners). */
function post(agent: Agent, cp: CpHandle, path: string, body: string): Promise<{ status: number; text: string; callId: string }> {
  const u = new URL(cp.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: Number(u.port), method: 'POST', path, agent, headers: { authorization: `Bearer ${cp.apiKey}`, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), callId: String(res.headers['x-call-id'] ?? '') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('scheduler cores (2 worker threads)', () => {
  const dirs: string[] = [];
  let cp: CpHandle;
  afterAll(() => stopAll(dirs));

  it('every call is answered exactly once, by its function, whichever core took the connection', { timeout: 120_000 }, async () => {
    cp = await startControlPlane({ args: ['--scheduler-threads', String(CORES)] });
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp, { args: ['--cores', '2'] })).stateDir);
    const names = namesOnEveryCore('echo', 6);
    for (const name of names) {
      expect((await deploy(cp, name, { runtime: 'node', handler: 'index.js', env: { GREETING: name }, concurrency: 8, scale: { max: 2, keepAlive: '10m' } }, join(FIXTURES, 'cp-hello'))).status).toBe(201);
    }
    const before = await metric(cp, 'baton_invocations_total');
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const calls = Array.from({ length: 600 }, (_, i) => ({ name: names[i % names.length] as string, body: `call-${i}` }));
    const answers = await Promise.all(calls.map((c) => post(agent, cp, `/function/${c.name}`, c.body)));
    agent.destroy();
    // each answered by its own function with its own body: nothing crossed, nothing was lost
    answers.forEach((a, i) => {
      const c = calls[i] as { name: string; body: string };
      expect(a.status, a.text).toBe(200);
      expect(a.text).toBe(`${c.name} ${c.body}`);
    });
    // exactly once: one call id each, and the owners counted each call once
    expect(new Set(answers.map((a) => a.callId)).size).toBe(calls.length);
    expect(await metric(cp, 'baton_invocations_total')).toBe(before + calls.length);
    // the kernel gave some connections to the core that does not own the function: those calls were handed over
    expect(await metric(cp, 'baton_calls_handed_over_total')).toBeGreaterThan(0);
    // nothing left running or queued anywhere
    const status = (await api(cp, 'GET', '/v1/status')).body as { inflight: number; queued: number; schedulerThreads: number };
    expect(status).toMatchObject({ inflight: 0, queued: 0, schedulerThreads: CORES });
  });

  it('a chain call to a function of the other core runs there, and its answer comes back to the caller', { timeout: 60_000 }, async () => {
    const caller = nameOn(0, 'caller');
    const callee = nameOn(1, 'callee');
    for (const name of [caller, callee]) expect((await deploy(cp, name, { runtime: 'node', handler: 'index.js', concurrency: 4, scale: { max: 2, keepAlive: '10m' } }, join(FIXTURES, 'chain'))).status).toBe(201);
    const handed = await metric(cp, 'baton_calls_handed_over_total');
    const r = await api(cp, 'POST', `/function/${caller}`, JSON.stringify({ op: 'call', target: callee, body: { op: 'whoami' } }));
    expect(r.status, r.text).toBe(200);
    const out = r.body as { me: { callId: string }; got: { status: number; body: string } };
    expect(out.got.status).toBe(200);
    const child = JSON.parse(Buffer.from(out.got.body, 'base64').toString()) as { parentId: string };
    expect(child.parentId).toBe(out.me.callId);
    // the child was handed from the caller's core to the callee's
    expect(await metric(cp, 'baton_calls_handed_over_total')).toBeGreaterThan(handed);
    // its activation record is kept by the core that ran it, and the main thread finds it
    const recs = (await api(cp, 'GET', `/v1/namespaces/default/activations?function=${callee}`)).body as { activations: { parentId: string | null }[] };
    expect(recs.activations.some((a) => a.parentId === out.me.callId)).toBe(true);
  });

  it('a caller that goes away cancels its call on the owner core: nothing stays queued there', { timeout: 60_000 }, async () => {
    const slow = nameOn(1, 'slow');
    expect((await deploy(cp, slow, { runtime: 'node', handler: 'index.js', concurrency: 1, scale: { max: 1, keepAlive: '10m' } }, join(FIXTURES, 'chain'))).status).toBe(201);
    // one call holds the only slot; the others queue behind it on the owner core, then their clients leave
    const holder = api(cp, 'POST', `/function/${slow}`, JSON.stringify({ op: 'sleep', ms: 6000 }));
    const aborts = Array.from({ length: 8 }, () => new AbortController());
    const waiting = aborts.map((a) => fetch(`${cp.url}/function/${slow}`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}` }, body: JSON.stringify({ op: 'sleep', ms: 1 }), signal: a.signal }).catch(() => 'aborted'));
    await waitFor(async () => (((await api(cp, 'GET', '/v1/status')).body as { queued: number }).queued >= 8 ? true : undefined), 10_000, () => 'the calls did not queue');
    for (const a of aborts) a.abort();
    expect(await Promise.all(waiting)).toEqual(new Array(8).fill('aborted'));
    // well before the holder ends (6 s): they left their queue when their clients did
    await waitFor(async () => (((await api(cp, 'GET', '/v1/status')).body as { queued: number }).queued === 0 ? true : undefined), 3_000, () => 'the cancelled calls stayed queued');
    expect((await holder).status).toBe(200);
    // and none of them ran after it: the holder is the function's only activation
    await new Promise((r) => setTimeout(r, 300));
    const recs = (await api(cp, 'GET', `/v1/namespaces/default/activations?function=${slow}`)).body as { activations: unknown[] };
    expect(recs.activations).toHaveLength(1);
  });
});
