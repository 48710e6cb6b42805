import { afterAll, describe, expect, it } from 'vitest';
import { api, deploy, startControlPlane, startWorker, stopAll, timing } from './helpers/cluster.js';

/** The emulated runtime the benchmarks use, through the whole stack (control plane, machine scheduler, link). */
describe('emulated workers', () => {
  const dirs: string[] = [];
  afterAll(() => stopAll(dirs));

  it('serve cold and warm calls, labelled emulated, with metering fields', { timeout: 60_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp, { runtime: 'emulated' })).stateDir);
    await deploy(cp, 'fake', { runtime: 'http', command: ['emulated'], scale: { max: 2 } });
    const first = await api(cp, 'POST', '/function/fake', 'x');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-baton-emulated')).toBe('1');
    expect(timing(first.headers)['cold']).toBeGreaterThan(0);
    const calls = await Promise.all(Array.from({ length: 20 }, () => api(cp, 'POST', '/function/fake', 'y')));
    expect(calls.every((c) => c.status === 200 && c.text === 'emulated')).toBe(true);
    expect(timing(calls[0]?.headers as Headers)['preempt']).toBe(0);
  });
});
