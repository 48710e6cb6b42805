import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, kill, pidAlive, sandboxPid, startControlPlane, startWorker, stopAll, waitFor } from './helpers/cluster.js';

interface Nodes {
  nodes: { id: string; name: string; state: string }[];
}

describe('worker lifecycle', () => {
  const dirs: string[] = [];
  afterAll(() => stopAll(dirs));

  it('kill -9 of a worker leaves no sandbox process behind; a restart keeps its node identity', async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const w = await startWorker(cp, { name: 'phoenix' });
    dirs.push(w.stateDir);
    const nodeId = (JSON.parse(readFileSync(join(w.stateDir, 'node.json'), 'utf8')) as { nodeId: string }).nodeId;
    await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'));
    await deploy(cp, 'echo', { runtime: 'http', command: [process.execPath, 'server.js'] }, join(FIXTURES, 'cp-http'));
    expect((await api(cp, 'POST', '/function/hello', 'x')).status).toBe(200);
    expect((await api(cp, 'POST', '/function/echo', 'x')).status).toBe(200);
    const nodePid = await sandboxPid(cp, 'hello');
    const httpPid = await sandboxPid(cp, 'echo');
    expect(pidAlive(nodePid)).toBe(true);
    expect(pidAlive(httpPid)).toBe(true);

    await kill(w.proc, 'SIGKILL');
    await waitFor(() => (!pidAlive(nodePid) && !pidAlive(httpPid) ? true : undefined), 10_000, () => `sandbox processes survived their worker: node ${pidAlive(nodePid)}, http ${pidAlive(httpPid)}`);

    const again = await startWorker(cp, { name: 'phoenix', stateDir: w.stateDir });
    const nodes = ((await api(cp, 'GET', '/v1/nodes')).body as Nodes).nodes.filter((n) => n.name === 'phoenix');
    expect(nodes.map((n) => n.id)).toEqual([nodeId]);
    expect(nodes[0]?.state).toBe('ready');
    // the restarted worker serves again
    expect((await api(cp, 'POST', '/function/hello', 'back')).text).toBe('hello back');
    await kill(again.proc, 'SIGTERM');
  });

  it('SIGTERM stops the worker and its sandboxes', async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const w = await startWorker(cp);
    dirs.push(w.stateDir);
    await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'));
    expect((await api(cp, 'POST', '/function/hello', 'x')).status).toBe(200);
    const pid = await sandboxPid(cp, 'hello');
    await kill(w.proc, 'SIGTERM');
    expect(w.proc.exitCode).toBe(0);
    expect(pidAlive(pid)).toBe(false);
  });

  it('a worker with a wrong join token is refused and says so', async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const bad = startWorker({ ...cp, joinToken: 'nope' }, { name: 'intruder' });
    await expect(bad).rejects.toThrow(/intruder was refused[\s\S]*rejected the join token/);
  });
});
