import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, FIXTURES, api, deploy, kill, pidAlive, sandboxes, startControlPlane, startWorker, stopAll, tempDir, timing, waitFor } from './helpers/cluster.js';

/** All live descendants of a process, from /proc's parent links. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/** Every `baton dev` a test started, so a failed test cannot leave its process group behind. */
const devGroups: number[] = [];

function startDev(): { proc: ReturnType<typeof spawn>; dir: string; output: () => string } {
  const dir = tempDir('dev-sup');
  // its own process group, like a shell job, so a "Ctrl-C" can go to the whole group
  const proc = spawn(process.execPath, [BIN, 'dev', '--port', '0'], { cwd: dir, env: { ...process.env, BATON_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (proc.pid !== undefined) devGroups.push(proc.pid);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, dir, output: () => out };
}

async function devCluster(dev: ReturnType<typeof startDev>): Promise<{ url: string; apiKey: string }> {
  await waitFor(() => (/api key: \S+/.test(dev.output()) ? true : undefined), 30_000, () => `baton dev did not come up:\n${dev.output()}`);
  const creds = JSON.parse(readFileSync(join(dev.dir, '.baton/credentials.json'), 'utf8')) as { gateway: string; apiKey: string };
  const cp = { url: creds.gateway, apiKey: creds.apiKey };
  await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'));
  await deploy(cp, 'echo', { runtime: 'http', command: [process.execPath, 'server.js'] }, join(FIXTURES, 'cp-http'));
  expect((await api(cp, 'POST', '/function/hello', 'x')).status).toBe(200);
  expect((await api(cp, 'POST', '/function/echo', 'x')).status).toBe(200);
  return cp;
}

describe('supervised like a daemon', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const pgid of devGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone already, as it should be
      }
    }
    await stopAll(dirs);
  });

  it('Ctrl-C of baton dev leaves no process behind, http servers included', { timeout: 60_000 }, async () => {
    const dev = startDev();
    dirs.push(dev.dir);
    await devCluster(dev);
    const pid = dev.proc.pid as number;
    const tree = descendants(pid);
    expect(tree.length).toBeGreaterThan(4); // worker, stem cells, two sandboxes and their wrappers
    process.kill(-pid, 'SIGINT'); // what the terminal does: the whole foreground group
    await waitFor(() => (dev.proc.exitCode !== null ? true : undefined), 20_000, () => 'baton dev did not exit');
    expect(dev.proc.exitCode).toBe(0);
    await waitFor(() => (tree.every((p) => !pidAlive(p)) ? true : undefined), 10_000, () => `left behind: ${tree.filter(pidAlive).join(', ')}`);
  });

  it('kill -9 of baton dev: its worker notices, stops its sandboxes and exits', { timeout: 60_000 }, async () => {
    const dev = startDev();
    dirs.push(dev.dir);
    await devCluster(dev);
    const tree = descendants(dev.proc.pid as number);
    await kill(dev.proc, 'SIGKILL');
    await waitFor(() => (tree.every((p) => !pidAlive(p)) ? true : undefined), 45_000, () => `left behind: ${tree.filter(pidAlive).join(', ')}`);
  });

  it('SIGTERM of a worker: no new sandboxes there, running calls finish, then it exits', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const a = await startWorker(cp, { name: 'leaving' });
    dirs.push(a.stateDir);
    await deploy(cp, 'sleepy', { runtime: 'node', handler: 'index.js', concurrency: 1, timeout: '20s', scale: { max: 4, keepAlive: '60s' } }, join(FIXTURES, 'cp-sleep'));
    const running = api(cp, 'POST', '/function/sleepy', '2500');
    await waitFor(async () => ((await sandboxes(cp, 'sleepy')).some((s) => s.inflight === 1) ? true : undefined), 10_000, () => 'call never ran');
    const b = await startWorker(cp, { name: 'staying' });
    dirs.push(b.stateDir);
    a.proc.kill('SIGTERM');
    await waitFor(async () => (((await api(cp, 'GET', '/v1/nodes')).body as { nodes: { name: string; state: string }[] }).nodes.find((n) => n.name === 'leaving')?.state === 'draining' ? true : undefined), 5_000, () => 'worker never said it was draining');
    // a new call is placed on the other worker while the first one finishes
    const meanwhile = await api(cp, 'POST', '/function/sleepy', '10');
    expect(meanwhile.status).toBe(200);
    // the autoscaler may add a second one (two calls are in flight, one on a draining sandbox): what matters is where they go
    const placed = (await sandboxes(cp, 'sleepy')).filter((s) => s.state !== 'draining').map((s) => s.node);
    expect(placed.length).toBeGreaterThan(0);
    expect(new Set(placed)).toEqual(new Set(['staying']));
    const done = await running;
    expect(done.status).toBe(200);
    expect((done.body as { slept: number }).slept).toBe(2500);
    await waitFor(() => (a.proc.exitCode !== null ? true : undefined), 10_000, () => 'draining worker never exited');
    expect(a.proc.exitCode).toBe(0);
  });

  it('the function timeout bounds execution only: time spent waiting for a sandbox does not cut a call short or kill a warm sandbox', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    await deploy(cp, 'tight', { runtime: 'node', handler: 'index.js', concurrency: 1, timeout: '1500ms', scale: { max: 1, keepAlive: '60s' } }, join(FIXTURES, 'cp-sleep'));
    expect((await api(cp, 'POST', '/function/tight', '1')).status).toBe(200);
    const [first, second] = await Promise.all([api(cp, 'POST', '/function/tight', '1000'), api(cp, 'POST', '/function/tight', '1000')]);
    expect([first.status, second.status]).toEqual([200, 200]);
    const waited = [first, second].map((r) => timing(r.headers)['queue'] ?? 0);
    expect(Math.max(...waited)).toBeGreaterThan(700); // the second waited for the first…
    expect((first.body as { instance: string }).instance).toBe((second.body as { instance: string }).instance); // …and the sandbox lived on
  });

  it('an http function that never listens on $PORT says so to the caller', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    await deploy(cp, 'deaf', { runtime: 'http', command: [process.execPath, 'server.js'], env: { DELAY_MS: 'never' }, timeout: '2s' }, join(FIXTURES, 'slow-start'));
    const r = await api(cp, 'POST', '/function/deaf', 'x');
    expect(r.status).toBe(502);
    expect((r.body as { error: { message: string } }).error.message).toMatch(/did not listen on \$PORT/);
  });

  it('a response over the limit fails only its own call, with an error naming the limit', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane({ args: ['--max-response', String(1024 * 1024)] });
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    await deploy(cp, 'big', { runtime: 'node', handler: 'index.js', concurrency: 4, timeout: '20s' }, join(FIXTURES, 'big-response'));
    await deploy(cp, 'echo', { runtime: 'http', command: [process.execPath, 'server.js'] }, join(FIXTURES, 'cp-http'));
    expect((await api(cp, 'POST', '/function/echo', 'x')).status).toBe(200);
    const slow = api(cp, 'POST', '/function/big?sleep=1500', '');
    await new Promise((r) => setTimeout(r, 300));
    const huge = await api(cp, 'POST', '/function/big?bytes=5000000', '');
    expect(huge.status).toBe(502);
    const err = (huge.body as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('response_too_large');
    expect(err.message).toContain('1048576');
    const fits = await api(cp, 'POST', '/function/big?bytes=1000000', '');
    expect(fits.status).toBe(200);
    expect(fits.text.length).toBe(1_000_000);
    // the http runtime stops reading past the limit as well
    await deploy(cp, 'echo', { runtime: 'http', command: [process.execPath, 'server.js'], env: { PAD: 'x' } }, join(FIXTURES, 'cp-http'));
    const echoBig = await api(cp, 'POST', '/function/echo', 'y'.repeat(1_100_000));
    expect(echoBig.status).toBe(502);
    expect((echoBig.body as { error: { code: string } }).error.code).toBe('response_too_large');
    // the call running alongside on the same worker link was not disturbed
    const s = await slow;
    expect(s.status).toBe(200);
    expect(s.text).toBe('slept');
  });
});
