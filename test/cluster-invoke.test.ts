import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, timing, waitFor, type CpHandle } from './helpers/cluster.js';

describe('deploy and invoke on a real cluster', () => {
  let cp: CpHandle;
  const dirs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const w = await startWorker(cp);
    dirs.push(w.stateDir);
  });
  afterAll(() => stopAll(dirs));

  it('node function: cold start, then warm on the same sandbox', async () => {
    const d = await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', env: { GREETING: 'hi' } }, join(FIXTURES, 'cp-hello'));
    expect(d.status).toBe(201);
    const first = await api(cp, 'POST', '/function/hello', 'baton');
    expect(first.status).toBe(200);
    expect(first.text).toBe('hi baton');
    expect(first.headers.get('x-call-id')).toMatch(/^call-/);
    const t1 = timing(first.headers);
    expect(t1['cold']).toBeGreaterThan(0);
    const second = await api(cp, 'POST', '/function/hello', '');
    expect(second.text).toBe('hi world');
    expect(timing(second.headers)['cold']).toBe(0);
    expect(second.headers.get('x-instance')).toBe(first.headers.get('x-instance'));
    const sbs = (await api(cp, 'GET', '/v1/sandboxes')).body as { sandboxes: { function: string }[] };
    expect(sbs.sandboxes.filter((s) => s.function === 'default/hello')).toHaveLength(1);
  });

  it('http function: readiness-checked cold start, then warm; path and method pass through', async () => {
    const d = await deploy(cp, 'echo', { runtime: 'http', command: [process.execPath, 'server.js'] }, join(FIXTURES, 'cp-http'));
    expect(d.status).toBe(201);
    const first = await api(cp, 'POST', '/function/echo/some/path?x=1', 'payload');
    expect(first.status).toBe(200);
    const b1 = first.body as { method: string; path: string; body: string; instance: string };
    expect(b1).toMatchObject({ method: 'POST', path: '/some/path?x=1', body: 'payload' });
    expect(timing(first.headers)['cold']).toBeGreaterThan(0);
    const second = await api(cp, 'PUT', '/function/echo', 'again');
    expect((second.body as { method: string; instance: string }).method).toBe('PUT');
    expect((second.body as { instance: string }).instance).toBe(b1.instance);
    expect(timing(second.headers)['cold']).toBe(0);
  });

  it('redeploying the same definition is a no-op; a change bumps the version and replaces sandboxes', async () => {
    const same = await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', env: { GREETING: 'hi' } }, join(FIXTURES, 'cp-hello'));
    expect(same.status).toBe(200);
    expect((same.body as { changed: boolean }).changed).toBe(false);
    const changed = await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', env: { GREETING: 'hey' } }, join(FIXTURES, 'cp-hello'));
    expect(changed.status).toBe(201);
    expect((changed.body as { function: { version: number } }).function.version).toBe(2);
    const r = await api(cp, 'POST', '/function/hello', 'you');
    expect(r.text).toBe('hey you');
  });

  it('a handler that throws or overruns its timeout gives a JSON error, and the function keeps serving', async () => {
    const d = await deploy(cp, 'sleepy', { runtime: 'node', handler: 'index.js', timeout: '1s' }, join(FIXTURES, 'cp-sleep'));
    expect(d.status).toBe(201);
    const thrown = await api(cp, 'POST', '/function/sleepy', 'throw');
    expect(thrown.status).toBe(500);
    expect((thrown.body as { error: { code: string; message: string } }).error).toMatchObject({ code: 'function_error' });
    expect((thrown.body as { error: { message: string } }).error.message).toContain('boom from the handler');
    const slow = await api(cp, 'POST', '/function/sleepy', '3000');
    expect(slow.status).toBe(504);
    expect((slow.body as { error: { code: string } }).error.code).toBe('timeout');
    const ok = await waitFor(async () => {
      const r = await api(cp, 'POST', '/function/sleepy', '1');
      return r.status === 200 ? r : undefined;
    }, 10_000, () => 'sleepy never answered after its timeout');
    expect((ok.body as { slept: number }).slept).toBe(1);
  });

  it('fn list and delete', async () => {
    const list = (await api(cp, 'GET', '/v1/namespaces/default/functions')).body as { functions: { name: string }[] };
    expect(list.functions.map((f) => f.name)).toEqual(expect.arrayContaining(['echo', 'hello']));
    expect((await api(cp, 'DELETE', '/v1/namespaces/default/functions/echo')).status).toBe(200);
    expect((await api(cp, 'POST', '/function/echo', 'x')).status).toBe(404);
    expect((await api(cp, 'DELETE', '/v1/namespaces/default/functions/echo')).status).toBe(404);
  });
});
