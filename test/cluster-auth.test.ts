import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, type CpHandle } from './helpers/cluster.js';

describe('tenancy and the auth matrix', () => {
  let cp: CpHandle;
  let keyA: string;
  let keyB: string;
  const dirs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    const a = await api(cp, 'POST', '/v1/namespaces', { name: 'team-a' });
    expect(a.status).toBe(201);
    keyA = (a.body as { apiKey: string }).apiKey;
    keyB = ((await api(cp, 'POST', '/v1/namespaces', { name: 'team-b' })).body as { apiKey: string }).apiKey;
    expect((await deploy(cp, 'fa', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'), 'team-a', keyA)).status).toBe(201);
    expect((await deploy(cp, 'fb', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'), 'team-b', keyB)).status).toBe(201);
  });
  afterAll(() => stopAll(dirs));

  const code = (r: { body: unknown }): string => (r.body as { error: { code: string } }).error.code;

  it('rejects missing, malformed and unknown keys with 401', async () => {
    for (const key of [null, 'not-a-key']) {
      const r = await api(cp, 'GET', '/v1/namespaces/team-a/functions', undefined, key);
      expect(r.status).toBe(401);
      expect(code(r)).toBe('unauthorized');
    }
    const res = await fetch(`${cp.url}/v1/whoami`, { headers: { authorization: 'Basic abc' } });
    expect(res.status).toBe(401);
    expect((await api(cp, 'POST', '/function/fa', 'x', 'bk_wrong')).status).toBe(401);
  });

  it('a namespace key sees and invokes only its own functions', async () => {
    expect((await api(cp, 'GET', '/v1/whoami', undefined, keyA)).body).toEqual({ namespace: 'team-a', admin: false });
    expect((await api(cp, 'GET', '/v1/namespaces/team-a/functions', undefined, keyA)).status).toBe(200);
    const other = await api(cp, 'GET', '/v1/namespaces/team-b/functions', undefined, keyA);
    expect(other.status).toBe(403);
    expect(code(other)).toBe('forbidden');
    expect((await api(cp, 'GET', '/v1/namespaces/team-b/functions/fb', undefined, keyA)).status).toBe(403);
    expect((await api(cp, 'DELETE', '/v1/namespaces/team-b/functions/fb', undefined, keyA)).status).toBe(403);
    expect((await deploy(cp, 'evil', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'), 'team-b', keyA)).status).toBe(403);
    // invocation: own function by name; the other namespace's neither by name (404) nor qualified (403)
    expect((await api(cp, 'POST', '/function/fa', 'a', keyA)).text).toBe('hello a');
    expect((await api(cp, 'POST', '/function/fb', 'a', keyA)).status).toBe(404);
    expect((await api(cp, 'POST', '/function/fb.team-b', 'a', keyA)).status).toBe(403);
    // admin-only endpoints
    expect((await api(cp, 'GET', '/v1/namespaces', undefined, keyA)).status).toBe(403);
    expect((await api(cp, 'POST', '/v1/namespaces', { name: 'x' }, keyA)).status).toBe(403);
    // the sandbox listing is filtered to the namespace
    const sbs = (await api(cp, 'GET', '/v1/sandboxes', undefined, keyB)).body as { sandboxes: { function: string }[] };
    expect(sbs.sandboxes.every((s) => s.function.startsWith('team-b/'))).toBe(true);
  });

  it('the admin key reaches every namespace with fn.ns', async () => {
    expect((await api(cp, 'POST', '/function/fb.team-b', 'admin')).text).toBe('hello admin');
    expect((await api(cp, 'GET', '/v1/namespaces/team-a/functions/fa')).status).toBe(200);
    const list = (await api(cp, 'GET', '/v1/namespaces')).body as { namespaces: { name: string }[] };
    expect(list.namespaces.map((n) => n.name)).toEqual(expect.arrayContaining(['default', 'team-a', 'team-b']));
    const dup = await api(cp, 'POST', '/v1/namespaces', { name: 'team-a' });
    expect(dup.status).toBe(409);
    expect(code(dup)).toBe('conflict');
  });

  it('the function never sees the caller\'s API key', async () => {
    await deploy(cp, 'echo', { runtime: 'http', command: [process.execPath, 'server.js'] }, join(FIXTURES, 'cp-http'));
    const r = await fetch(`${cp.url}/function/echo`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}`, 'x-custom': 'yes' }, body: 'b' });
    expect(r.status).toBe(200);
    const seen = (await r.json()) as { headers: Record<string, string> };
    expect(seen.headers['x-custom']).toBe('yes');
    expect(seen.headers['authorization']).toBeUndefined();
    expect(JSON.stringify(seen)).not.toContain(cp.apiKey);
  });
});
