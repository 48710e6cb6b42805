import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, timing, waitFor, type CpHandle } from './helpers/cluster.js';

/** Price classes enforced on a real worker's cores and memory, with real process sandboxes. */

interface Spun {
  spun: number;
  instance: string;
  done: number;
}

/**
 * Resident memory of every process below `root` (not root itself), MB: anonymous
 * and shared-memory pages (RssAnon + RssShmem), which are each process's own.
 * File-backed pages (the node binary, shared libraries) are shared page cache,
 * counted in every process's VmRSS but held once.
 */
function descendantsRssMb(root: number): number {
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
  let kb = 0;
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      try {
        const status = readFileSync(`/proc/${c}/status`, 'utf8');
        for (const field of ['RssAnon', 'RssShmem']) {
          const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
          kb += m === null ? 0 : Number(m[1]);
        }
      } catch {
        // gone
      }
      walk(c);
    }
  };
  walk(root);
  return kb / 1024;
}

async function metric(cp: CpHandle, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await api(cp, 'GET', '/metrics')).text;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.split(' ').pop());
  }
  return 0;
}

describe('price classes on the machine', () => {
  const dirs: string[] = [];
  afterAll(() => stopAll(dirs));

  async function oneCoreCluster(extra: string[] = []): Promise<CpHandle> {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp, { args: ['--cores', '1', ...extra] })).stateDir);
    return cp;
  }

  async function warm(cp: CpHandle, name: string, cls: string): Promise<void> {
    await deploy(cp, name, { runtime: 'node', handler: 'index.js', priceClass: cls, timeout: '60s', scale: { max: 1, keepAlive: '10m' } }, join(FIXTURES, 'spin'));
    expect((await api(cp, 'POST', `/function/${name}`, '1')).status).toBe(200);
  }

  it('a critical call preempts a running batch call on a full worker; the batch call then finishes with the right result, billed only for its CPU', { timeout: 90_000 }, async () => {
    const cp = await oneCoreCluster();
    await warm(cp, 'bulk', 'batch');
    await warm(cp, 'page', 'critical');
    const bulk = api(cp, 'POST', '/function/bulk', '800');
    await new Promise((r) => setTimeout(r, 200)); // bulk holds the only core
    const page = await api(cp, 'POST', '/function/page', '50');
    expect(page.status).toBe(200);
    const pageT = timing(page.headers);
    expect(pageT['preempt']).toBe(0);
    const b = await bulk;
    expect(b.status).toBe(200);
    expect((b.body as Spun).spun).toBe(800);
    const bT = timing(b.headers);
    // it was frozen while the critical call ran…
    expect(bT['preempt']).toBeGreaterThan(30);
    // …and that time is not billed as CPU
    expect(bT['cpu']).toBeGreaterThan(800 * 0.8);
    expect(bT['cpu']).toBeLessThan(800 * 1.2);
    // the critical call finished long before the batch call it overtook
    expect((page.body as Spun).done).toBeLessThan((b.body as Spun).done);
    type Nodes = { nodes: { preemptions: number }[] };
    await waitFor(async () => (((await api(cp, 'GET', '/v1/nodes')).body as Nodes).nodes[0]?.preemptions ?? 0) >= 1 || undefined, 5_000, () => 'no preemption reported');
  });

  it('FIFO within a class, and a preempted call resumes before later calls of its class', { timeout: 90_000 }, async () => {
    const cp = await oneCoreCluster();
    for (const n of ['b1', 'b2', 'b3']) await warm(cp, n, 'batch');
    await warm(cp, 'crit', 'critical');
    const first = api(cp, 'POST', '/function/b1', '400');
    await new Promise((r) => setTimeout(r, 150));
    const second = api(cp, 'POST', '/function/b2', '100');
    await new Promise((r) => setTimeout(r, 50));
    const third = api(cp, 'POST', '/function/b3', '100');
    await new Promise((r) => setTimeout(r, 50));
    const crit = api(cp, 'POST', '/function/crit', '100'); // preempts b1, which must still run before b2 and b3
    const [r1, r2, r3, rc] = await Promise.all([first, second, third, crit]);
    for (const r of [r1, r2, r3, rc]) expect(r.status).toBe(200);
    const done = [r1, r2, r3, rc].map((r) => (r.body as Spun).done);
    expect(done[3]).toBeLessThan(done[0] as number); // critical first
    expect(done[0]).toBeLessThan(done[1] as number); // the preempted b1 before b2
    expect(done[1]).toBeLessThan(done[2] as number); // b2 before b3: first come, first served
    expect(timing(r1.headers)['preempt']).toBeGreaterThan(50);
  });

  it('a worker keeps its sandboxes within --memory: batch sandboxes are evicted naming memory, critical calls succeed, the worker survives', { timeout: 120_000 }, async () => {
    const cp = await startControlPlane();
    dirs.push(cp.dataDir);
    const w = await startWorker(cp, { args: ['--memory', '500', '--stem-cells', '0'] });
    dirs.push(w.stateDir);
    for (const [name, cls] of [['big-batch', 'batch'], ['big-crit', 'critical']] as const) {
      await deploy(cp, name, { runtime: 'node', handler: 'index.js', priceClass: cls, concurrency: 1, timeout: '60s', scale: { max: 4, keepAlive: '10m' } }, join(FIXTURES, 'hog'));
    }
    let maxMb = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxMb = Math.max(maxMb, descendantsRssMb(w.proc.pid as number));
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    // three batch calls would hold 3 × 200 MB; then a critical call needs 150 MB
    const batch = [1, 2, 3].map(() => api(cp, 'POST', '/function/big-batch', { mb: 200, stepMs: 60, holdMs: 4000 }));
    await new Promise((r) => setTimeout(r, 2500));
    const crit = await api(cp, 'POST', '/function/big-crit', { mb: 150, stepMs: 20, holdMs: 500 });
    const results = await Promise.all(batch);
    sampling = false;
    await sampler;
    expect(crit.status, crit.text).toBe(200);
    const failed = results.filter((r) => r.status !== 200);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const f of failed) {
      expect(f.status, f.text).toBe(503);
      expect((f.body as { error: { code: string; message: string } }).error.code).toBe('memory_pressure');
      expect((f.body as { error: { message: string } }).error.message).toMatch(/memory/);
    }
    expect(w.proc.exitCode).toBeNull();
    // the sandboxes' total stayed within what the worker offers, plus a small margin (runners' baseline, sampling)
    expect(maxMb).toBeLessThan(500 * 1.1);
    // and it still serves
    expect((await api(cp, 'POST', '/function/big-crit', { mb: 10, holdMs: 10 })).status).toBe(200);
  });

  it('meters CPU per call and per class (±20 % of known work)', { timeout: 90_000 }, async () => {
    const cp = await oneCoreCluster();
    await deploy(cp, 'burn', { runtime: 'node', handler: 'index.js', priceClass: 'standard', timeout: '60s', scale: { max: 1, keepAlive: '10m' } }, join(FIXTURES, 'spin'));
    expect((await api(cp, 'POST', '/function/burn', '1')).status).toBe(200);
    const before = { critical: await metric(cp, 'baton_usage_cpu_seconds_total', { function: 'burn', class: 'critical' }), batch: await metric(cp, 'baton_usage_cpu_seconds_total', { function: 'burn', class: 'batch' }) };
    for (const cls of ['critical', 'critical', 'batch']) {
      const res = await fetch(`${cp.url}/function/burn`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}`, 'x-price-class': cls }, body: '300' });
      expect(res.status).toBe(200);
      const cpu = timing(res.headers)['cpu'] ?? 0;
      expect(cpu).toBeGreaterThan(300 * 0.8);
      expect(cpu).toBeLessThan(300 * 1.2);
    }
    const critical = (await metric(cp, 'baton_usage_cpu_seconds_total', { function: 'burn', class: 'critical' })) - before.critical;
    const batch = (await metric(cp, 'baton_usage_cpu_seconds_total', { function: 'burn', class: 'batch' })) - before.batch;
    expect(critical).toBeGreaterThan(0.6 * 0.8);
    expect(critical).toBeLessThan(0.6 * 1.2);
    expect(batch).toBeGreaterThan(0.3 * 0.8);
    expect(batch).toBeLessThan(0.3 * 1.2);
    expect(await metric(cp, 'baton_usage_gb_seconds_total', { function: 'burn', class: 'critical' })).toBeGreaterThan(0);
  });
});
