import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, kill, startControlPlane, startWorker, stopAll, timing, waitFor } from './helpers/cluster.js';

interface Sandboxes {
  sandboxes: { id: string; function: string; nodeId: string; node: string; state: string }[];
}
interface Nodes {
  nodes: { id: string; name: string; state: string }[];
}

describe('recovery', () => {
  const dirs: string[] = [];
  afterAll(() => stopAll(dirs));

  it('control plane kill -9 and restart: functions persist, workers reconnect, sandboxes are adopted, not duplicated', { timeout: 150_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const w = await startWorker(cp, { name: 'survivor' });
    dirs.push(w.stateDir);
    await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', scale: { keepAlive: '60s' } }, join(FIXTURES, 'cp-hello'));
    const before = await api(cp, 'POST', '/function/hello', 'one');
    expect(before.status).toBe(200);
    const sbBefore = ((await api(cp, 'GET', '/v1/sandboxes')).body as Sandboxes).sandboxes;
    expect(sbBefore).toHaveLength(1);

    await kill(cp.proc, 'SIGKILL');
    // Same address, so the worker finds it again. The killed process's connections sit in
    // TIME_WAIT; the restart binds anyway, at once (src/controlplane/listen.ts).
    const restartAt = Date.now();
    const cp2 = await startControlPlane({ dataDir: cp.dataDir, args: ['--port', new URL(cp.url).port], startTimeoutMs: 100_000 });
    expect(Date.now() - restartAt).toBeLessThan(30_000);
    expect(cp2.apiKey).toBe(cp.apiKey);
    // the function definition survived
    const fn = await api(cp2, 'GET', '/v1/namespaces/default/functions/hello');
    expect(fn.status).toBe(200);
    // the worker reconnects on its own and its live sandbox is adopted
    const adopted = await waitFor(async () => {
      const s = ((await api(cp2, 'GET', '/v1/sandboxes')).body as Sandboxes).sandboxes;
      return s.length > 0 ? s : undefined;
    }, 15_000, () => `worker did not reconnect:\n${w.output()}`);
    expect(adopted.map((s) => s.id)).toEqual(sbBefore.map((s) => s.id));
    const after = await api(cp2, 'POST', '/function/hello', 'two');
    expect(after.status).toBe(200);
    expect(after.text).toBe('hello two');
    expect(timing(after.headers)['cold']).toBe(0);
    expect(after.headers.get('x-instance')).toBe(before.headers.get('x-instance'));
    const sbAfter = ((await api(cp2, 'GET', '/v1/sandboxes')).body as Sandboxes).sandboxes;
    expect(sbAfter).toHaveLength(1);
    const nodes = ((await api(cp2, 'GET', '/v1/nodes')).body as Nodes).nodes;
    expect(nodes.filter((n) => n.name === 'survivor')).toHaveLength(1);
  });

  it('worker kill -9: declared dead within the heartbeat timeout, sandboxes forgotten, calls go to the other worker', async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const a = await startWorker(cp, { name: 'alpha' });
    dirs.push(a.stateDir);
    await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', scale: { keepAlive: '60s' } }, join(FIXTURES, 'cp-hello'));
    expect((await api(cp, 'POST', '/function/hello', 'x')).status).toBe(200);
    const b = await startWorker(cp, { name: 'beta' });
    dirs.push(b.stateDir);
    const sb = ((await api(cp, 'GET', '/v1/sandboxes')).body as Sandboxes).sandboxes;
    expect(sb.map((s) => s.node)).toEqual(['alpha']);

    const killedAt = Date.now();
    await kill(a.proc, 'SIGKILL');
    await waitFor(async () => {
      const nodes = ((await api(cp, 'GET', '/v1/nodes')).body as Nodes).nodes;
      return nodes.some((n) => n.name === 'alpha') ? undefined : true;
    }, 10_000, () => 'alpha was never declared dead');
    // --heartbeat-timeout is 2s in the harness; allow for the sweep period and a loaded machine
    expect(Date.now() - killedAt).toBeLessThan(8_000);
    expect(((await api(cp, 'GET', '/v1/sandboxes')).body as Sandboxes).sandboxes.filter((s) => s.node === 'alpha')).toHaveLength(0);
    const r = await api(cp, 'POST', '/function/hello', 'y');
    expect(r.status).toBe(200);
    const now = ((await api(cp, 'GET', '/v1/sandboxes')).body as Sandboxes).sandboxes;
    expect(now.map((s) => s.node)).toEqual(['beta']);
  });
});
