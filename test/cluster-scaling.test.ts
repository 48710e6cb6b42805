import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, timing, waitFor, type CpHandle } from './helpers/cluster.js';

interface SandboxList {
  sandboxes: { function: string; state: string; id: string }[];
}

async function sandboxesOf(cp: CpHandle, fn: string): Promise<SandboxList['sandboxes']> {
  return ((await api(cp, 'GET', '/v1/sandboxes')).body as SandboxList).sandboxes.filter((s) => s.function === `default/${fn}`);
}

describe('scaling and queueing', () => {
  let cp: CpHandle;
  const dirs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane({ args: ['--autoscaler-tick', '200ms'] });
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
  });
  afterAll(() => stopAll(dirs));

  it('scales to zero after keep-alive, and cold-starts again', async () => {
    await deploy(cp, 'brief', { runtime: 'node', handler: 'index.js', scale: { keepAlive: '1s' } }, join(FIXTURES, 'cp-hello'));
    expect((await api(cp, 'POST', '/function/brief', 'a')).status).toBe(200);
    expect(await sandboxesOf(cp, 'brief')).toHaveLength(1);
    await waitFor(async () => ((await sandboxesOf(cp, 'brief')).length === 0 ? true : undefined), 10_000, () => 'brief did not scale to zero');
    const again = await api(cp, 'POST', '/function/brief', 'b');
    expect(again.status).toBe(200);
    expect(timing(again.headers)['cold']).toBeGreaterThan(0);
  });

  it('keeps scale.min sandboxes warm without traffic', async () => {
    await deploy(cp, 'warm', { runtime: 'node', handler: 'index.js', scale: { min: 2, keepAlive: '1s' } }, join(FIXTURES, 'cp-hello'));
    const ready = await waitFor(async () => {
      const s = await sandboxesOf(cp, 'warm');
      return s.filter((x) => x.state === 'ready').length === 2 ? s : undefined;
    }, 10_000, () => 'min scale not reached');
    expect(ready).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await sandboxesOf(cp, 'warm')).toHaveLength(2);
  });

  it('queues calls beyond the free slots and serves them all, never exceeding max scale × concurrency', async () => {
    await deploy(cp, 'queued', { runtime: 'node', handler: 'index.js', concurrency: 2, scale: { max: 1, keepAlive: '5s' } }, join(FIXTURES, 'cp-sleep'));
    const calls = await Promise.all(Array.from({ length: 6 }, () => api(cp, 'POST', '/function/queued', '300')));
    expect(calls.map((c) => c.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const pids = new Set(calls.map((c) => (c.body as { instance: string }).instance));
    expect(pids.size).toBe(1);
    const queuedMs = calls.map((c) => timing(c.headers)['queue'] ?? 0).sort((a, b) => a - b);
    // two run at once; the other four wait for slots (about 300 ms and 600 ms)
    expect(queuedMs.filter((q) => q >= 200)).toHaveLength(4);
    expect(queuedMs.filter((q) => q >= 500)).toHaveLength(2);
    expect(await sandboxesOf(cp, 'queued')).toHaveLength(1);
  });

  it('scales out under concurrent load when max allows', async () => {
    await deploy(cp, 'wide', { runtime: 'node', handler: 'index.js', scale: { max: 4, keepAlive: '5s', panicWindow: '400ms', stableWindow: '2s' } }, join(FIXTURES, 'cp-sleep'));
    const calls = await Promise.all(Array.from({ length: 8 }, () => api(cp, 'POST', '/function/wide', '1500')));
    expect(calls.every((c) => c.status === 200)).toBe(true);
    const pids = new Set(calls.map((c) => (c.body as { instance: string }).instance));
    expect(pids.size).toBeGreaterThan(1);
    expect(pids.size).toBeLessThanOrEqual(4);
  });

  it('a full queue answers 503 with Retry-After', async () => {
    const cp2 = await startControlPlane({ args: ['--max-queue', '2'] });
    dirs.push(cp2.dataDir);
    dirs.push((await startWorker(cp2)).stateDir);
    await deploy(cp2, 'tiny', { runtime: 'node', handler: 'index.js', scale: { max: 1 } }, join(FIXTURES, 'cp-sleep'));
    const calls = await Promise.all(Array.from({ length: 6 }, () => api(cp2, 'POST', '/function/tiny', '500')));
    const rejected = calls.filter((c) => c.status === 503);
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected[0]?.headers.get('retry-after')).toBe('1');
    expect((rejected[0]?.body as { error: { code: string } }).error.code).toBe('overloaded');
    expect(calls.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(2);
  });
});
