import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, kill, pidAlive, sandboxPid, sandboxes, startControlPlane, startWorker, stopAll, timing, waitFor, type CpHandle } from './helpers/cluster.js';
import { LinkProxy } from './helpers/proxy.js';

/** Sandbox lifecycle under faults: every case here failed before the fix it names. */

interface Nodes {
  nodes: { name: string; state: string }[];
}

async function nodeState(cp: CpHandle, name: string): Promise<string | undefined> {
  return ((await api(cp, 'GET', '/v1/nodes')).body as Nodes).nodes.find((n) => n.name === name)?.state;
}

/** Host pids of the fixture servers started as `node server.js <marker>` (not their wrappers). */
function serversWith(marker: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[1] === 'server.js' && argv[2] === marker) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

async function functionStatus(cp: CpHandle, name: string): Promise<{ sandboxes: number; inflight: number; queued: number }> {
  return ((await api(cp, 'GET', `/v1/namespaces/default/functions/${name}`)).body as { function: { status: { sandboxes: number; inflight: number; queued: number } } }).function.status;
}

describe('sandbox lifecycle under faults', () => {
  const dirs: string[] = [];
  const proxies: LinkProxy[] = [];
  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await stopAll(dirs);
  });

  async function clusterBehindProxy(cpArgs: string[] = [], workerArgs: string[] = []): Promise<{ cp: CpHandle; proxy: LinkProxy; worker: Awaited<ReturnType<typeof startWorker>> }> {
    const cp = await startControlPlane({ args: cpArgs });
    dirs.push(cp.dataDir);
    const proxy = new LinkProxy(Number(new URL(cp.url).port));
    proxies.push(proxy);
    await proxy.start();
    const worker = await startWorker(cp, { name: 'linked', controlPlane: proxy.url, args: workerArgs });
    dirs.push(worker.stateDir);
    return { cp, proxy, worker };
  }

  it('after a worker kill -9 with calls in flight, its sandboxes are forgotten completely: later calls start fresh and the function scales to zero', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const a = await startWorker(cp, { name: 'doomed' });
    dirs.push(a.stateDir);
    await deploy(cp, 'sleepy', { runtime: 'node', handler: 'index.js', concurrency: 2, timeout: '10s', scale: { max: 2, keepAlive: '2s' } }, join(FIXTURES, 'cp-sleep'));
    const inflight = [api(cp, 'POST', '/function/sleepy', '5000'), api(cp, 'POST', '/function/sleepy', '5000')];
    await waitFor(async () => ((await functionStatus(cp, 'sleepy')).inflight === 2 ? true : undefined), 15_000, () => 'calls never ran');
    await kill(a.proc, 'SIGKILL');
    const failed = await Promise.all(inflight);
    expect(failed.map((r) => r.status)).toEqual([502, 502]);
    expect(await sandboxes(cp, 'sleepy')).toEqual([]);
    const b = await startWorker(cp, { name: 'rescuer' });
    dirs.push(b.stateDir);
    const next = await api(cp, 'POST', '/function/sleepy', '10');
    expect(next.status).toBe(200);
    expect(timing(next.headers)['cold']).toBeGreaterThan(0);
    expect((await sandboxes(cp, 'sleepy')).map((s) => s.node)).toEqual(['rescuer']);
    // nothing holds the function up: it goes back to zero after its keep-alive
    await waitFor(async () => ((await sandboxes(cp, 'sleepy')).length === 0 ? true : undefined), 15_000, () => 'the function never scaled to zero');
    expect(await functionStatus(cp, 'sleepy')).toEqual({ sandboxes: 0, ready: 0, inflight: 0, queued: 0 });
  });

  it('deleting a function with a call in flight deletes its sandbox once the call ends', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    await deploy(cp, 'doomed', { runtime: 'node', handler: 'index.js', timeout: '10s', scale: { keepAlive: '60s' } }, join(FIXTURES, 'cp-sleep'));
    expect((await api(cp, 'POST', '/function/doomed', '1')).status).toBe(200);
    const pid = await sandboxPid(cp, 'doomed');
    const call = api(cp, 'POST', '/function/doomed', '1500');
    await waitFor(async () => ((await functionStatus(cp, 'doomed')).inflight === 1 ? true : undefined), 5_000, () => 'call never ran');
    expect((await api(cp, 'DELETE', '/v1/namespaces/default/functions/doomed')).status).toBe(200);
    expect(pidAlive(pid)).toBe(true);
    expect((await call).status).toBe(200);
    await waitFor(() => (!pidAlive(pid) ? true : undefined), 10_000, () => `sandbox process ${pid} outlived its deleted function`);
    expect(await sandboxes(cp)).toEqual([]);
  });

  it('a sandbox that finishes starting after its worker reconnected is deleted, and one whose ready report could not be sent is adopted: no untracked process', { timeout: 60_000 }, async () => {
    const { cp, proxy } = await clusterBehindProxy();
    const marker = `slow-${Math.random().toString(36).slice(2)}`;
    await deploy(cp, 'slow', { runtime: 'http', command: [process.execPath, 'server.js', marker], env: { DELAY_MS: '2500' }, timeout: '10s' }, join(FIXTURES, 'slow-start'));
    // (a) the link drops while it starts; the worker is back (and said hello) before it is ready.
    // (The waiting call is served by a new sandbox or fails, depending on timing; either is fine.)
    const first = api(cp, 'POST', '/function/slow', 'x');
    await waitFor(() => (serversWith(marker).length > 0 ? true : undefined), 10_000, () => 'the sandbox never started');
    proxy.cut();
    await first;
    await waitFor(async () => ((await nodeState(cp, 'linked')) === 'ready' ? true : undefined), 10_000, () => 'worker did not come back');
    // every server process left is one the control plane tracks
    await waitFor(
      async () => (serversWith(marker).length === (await sandboxes(cp, 'slow')).length ? true : undefined),
      15_000,
      () => `untracked sandbox processes: ${serversWith(marker).length} servers running`,
    );
    expect((await api(cp, 'DELETE', '/v1/namespaces/default/functions/slow')).status).toBe(200);
    await waitFor(() => (serversWith(marker).length === 0 ? true : undefined), 15_000, () => 'servers outlived their sandboxes');
    await deploy(cp, 'slow', { runtime: 'http', command: [process.execPath, 'server.js', marker], env: { DELAY_MS: '2500' }, timeout: '10s' }, join(FIXTURES, 'slow-start'));

    // (b) the link is down when it becomes ready (the report cannot be sent): the next hello reports it and it is adopted
    const second = api(cp, 'POST', '/function/slow', 'y');
    await waitFor(() => (serversWith(marker).length > 0 ? true : undefined), 10_000, () => 'the sandbox never started');
    proxy.refuse(true);
    proxy.cut();
    await second;
    await new Promise((r) => setTimeout(r, 3500)); // it is ready now, on a disconnected worker
    proxy.refuse(false);
    await waitFor(async () => ((await sandboxes(cp, 'slow')).length === 1 ? true : undefined), 15_000, () => 'the sandbox was not adopted');
    const pid = await sandboxPid(cp, 'slow');
    expect(pidAlive(pid)).toBe(true);
    expect(serversWith(marker)).toHaveLength(1);
    const warm = await api(cp, 'POST', '/function/slow', 'z');
    expect(warm.text).toBe('up');
    expect(timing(warm.headers)['cold']).toBe(0);
  });

  it('adoption takes only the exact function incarnation: a sandbox of a deleted and re-created function is dropped', { timeout: 60_000 }, async () => {
    const { cp, proxy } = await clusterBehindProxy();
    await deploy(cp, 'phoenix', { runtime: 'node', handler: 'index.js', env: { GREETING: 'old' }, scale: { keepAlive: '60s' } }, join(FIXTURES, 'cp-hello'));
    expect((await api(cp, 'POST', '/function/phoenix', 'x')).text).toBe('old x');
    const oldPid = await sandboxPid(cp, 'phoenix');
    proxy.refuse(true);
    proxy.cut();
    await waitFor(async () => ((await nodeState(cp, 'linked')) !== 'ready' ? true : undefined), 10_000, () => 'worker never disconnected');
    expect((await api(cp, 'DELETE', '/v1/namespaces/default/functions/phoenix')).status).toBe(200);
    const again = await deploy(cp, 'phoenix', { runtime: 'node', handler: 'index.js', env: { GREETING: 'new' }, scale: { keepAlive: '60s' } }, join(FIXTURES, 'cp-hello'));
    expect((again.body as { function: { version: number } }).function.version).toBe(1); // same name, same version number…
    proxy.refuse(false);
    await waitFor(async () => ((await nodeState(cp, 'linked')) === 'ready' ? true : undefined), 15_000, () => 'worker did not come back');
    // …but a different incarnation: the old sandbox is not adopted, and goes
    expect((await api(cp, 'POST', '/function/phoenix', 'y')).text).toBe('new y');
    await waitFor(() => (!pidAlive(oldPid) ? true : undefined), 10_000, () => 'the old incarnation\'s sandbox lives on');
  });

  it('adoption respects the calls the worker reports running: no second call is pushed into a busy sandbox', { timeout: 60_000 }, async () => {
    const { cp, proxy } = await clusterBehindProxy();
    await deploy(cp, 'single', { runtime: 'node', handler: 'index.js', concurrency: 1, timeout: '10s', scale: { max: 1, keepAlive: '60s' } }, join(FIXTURES, 'cp-sleep'));
    expect((await api(cp, 'POST', '/function/single', '1')).status).toBe(200);
    const long = api(cp, 'POST', '/function/single', '3000');
    await waitFor(async () => ((await functionStatus(cp, 'single')).inflight === 1 ? true : undefined), 5_000, () => 'call never ran');
    proxy.cut(); // the caller of the long call gets an error; the worker keeps running it
    expect((await long).status).toBe(502);
    await waitFor(async () => ((await sandboxes(cp, 'single')).length === 1 ? true : undefined), 10_000, () => 'sandbox not adopted');
    const next = await api(cp, 'POST', '/function/single', '10');
    expect(next.status).toBe(200);
    expect((next.body as { concurrent: number }).concurrent).toBe(1);
    expect(timing(next.headers)['queue']).toBeGreaterThan(0);
  });

  it('after a control-plane restart the autoscaler does not take adopted sandboxes away on its first ticks', { timeout: 90_000 }, async () => {
    // four cores: with price classes on the machine, a worker runs at most one sandbox per core at once
    const { cp, proxy } = await clusterBehindProxy(['--autoscaler-tick', '200ms'], ['--cores', '4']);
    await deploy(cp, 'wide', { runtime: 'node', handler: 'index.js', concurrency: 1, scale: { max: 4, keepAlive: '60s', stableWindow: '10s', panicWindow: '1s' } }, join(FIXTURES, 'cp-sleep'));
    await Promise.all(Array.from({ length: 4 }, () => api(cp, 'POST', '/function/wide', '2500')));
    await waitFor(async () => ((await sandboxes(cp, 'wide')).filter((s) => s.state === 'ready').length === 4 ? true : undefined), 20_000, () => 'never scaled to 4');
    await kill(cp.proc, 'SIGKILL');
    const cp2 = await startControlPlane({ dataDir: cp.dataDir, args: ['--autoscaler-tick', '200ms'] });
    proxy.retarget(Number(new URL(cp2.url).port));
    proxy.cut();
    await waitFor(async () => ((await sandboxes(cp2, 'wide')).length === 4 ? true : undefined), 15_000, () => 'sandboxes were not adopted');
    await new Promise((r) => setTimeout(r, 2000)); // ten autoscaler ticks
    expect(await sandboxes(cp2, 'wide')).toHaveLength(4);
  });

  it('a cancelled or timed-out queued call leaves its queue at once', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane({ args: ['--max-wait', '1s'] });
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    await deploy(cp, 'narrow', { runtime: 'node', handler: 'index.js', concurrency: 1, timeout: '20s', scale: { max: 1, keepAlive: '60s' } }, join(FIXTURES, 'cp-sleep'));
    expect((await api(cp, 'POST', '/function/narrow', '1')).status).toBe(200);
    const busy = api(cp, 'POST', '/function/narrow', '6000');
    await waitFor(async () => ((await functionStatus(cp, 'narrow')).inflight === 1 ? true : undefined), 5_000, () => 'call never ran');
    const abort = new AbortController();
    const headers = { authorization: `Bearer ${cp.apiKey}` };
    const cancelled = Array.from({ length: 3 }, () => fetch(`${cp.url}/function/narrow`, { method: 'POST', headers, body: '1', signal: abort.signal }).catch(() => 'aborted'));
    await waitFor(async () => ((await functionStatus(cp, 'narrow')).queued === 3 ? true : undefined), 5_000, () => 'calls were not queued');
    abort.abort();
    expect(await Promise.all(cancelled)).toEqual(['aborted', 'aborted', 'aborted']);
    await waitFor(async () => ((await functionStatus(cp, 'narrow')).queued === 0 ? true : undefined), 1_000, () => 'cancelled calls stayed queued');
    // a queued call that runs out of waiting time goes too, with an error that says it waited
    const waited = await api(cp, 'POST', '/function/narrow', '1');
    expect(waited.status).toBe(504);
    expect((waited.body as { error: { message: string } }).error.message).toMatch(/waited \d+ ms for a sandbox/);
    expect((await functionStatus(cp, 'narrow')).queued).toBe(0);
    expect((await functionStatus(cp, 'narrow')).inflight).toBe(1);
    expect((await busy).status).toBe(200);
  });
});
