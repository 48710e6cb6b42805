import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, FIXTURES, api, kill, sandboxes, startControlPlane, startWorker, stopAll, tempDir, waitFor, type CpHandle, type WorkerHandle } from './helpers/cluster.js';

/**
 * A hostile tenant inside a real sandbox tries to reach baton's secrets, other
 * tenants, other processes and the machine; every attempt must be denied.
 * Needs what a production worker has: root and util-linux (unshare, setpriv).
 */
const canIsolate = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') && ['/usr/bin/unshare', '/bin/unshare'].some((p) => existsSync(p));

/** A bundle carrying a setuid file, as a crafted upload could (the CLI never packs such modes). */
function probeBundle(): string {
  const dir = join(FIXTURES, 'tenant-probe');
  const files = [
    { path: 'index.js', mode: 0o644, data: readFileSync(join(dir, 'index.js')) },
    { path: 'suid-tool', mode: 0o4755, data: Buffer.from('#!/bin/sh\nid\n') },
  ];
  return gzipSync(new Packr({ useRecords: false, mapsAsObjects: true }).pack({ v: 1, files })).toString('base64');
}

function hostProcessesWith(needle: string): string[] {
  const hits: string[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`).includes(needle)) hits.push(`${p}: ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
    } catch {
      // gone
    }
  }
  return hits;
}

describe.skipIf(!canIsolate)('sandbox isolation (root, util-linux)', () => {
  let cp: CpHandle;
  let w: WorkerHandle;
  let alphaKey = '';
  let betaKey = '';
  const dirs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    w = await startWorker(cp, { args: ['--memory', '300', '--sandbox-pids', '64', '--stem-cells', '1'] });
    dirs.push(w.stateDir);
    for (const ns of ['alpha', 'beta']) {
      const r = await api(cp, 'POST', '/v1/namespaces', { name: ns });
      expect(r.status).toBe(201);
      const key = (r.body as { apiKey: string }).apiKey;
      if (ns === 'alpha') alphaKey = key;
      else betaKey = key;
      const d = await api(cp, 'PUT', `/v1/namespaces/${ns}/functions/probe`, { spec: { runtime: 'node', handler: 'index.js', timeout: '20s' }, bundle: probeBundle() }, key);
      expect(d.status).toBe(201);
    }
  }, 60_000);
  afterAll(() => stopAll(dirs));

  it('denies every escape a tenant tries', { timeout: 60_000 }, async () => {
    // the other tenant leaves a secret in its scratch directory first
    const beta = await api(cp, 'POST', '/function/probe', { op: 'remember', tenant: 'beta' }, betaKey);
    expect(beta.status).toBe(200);
    expect((beta.body as { wrote: string[] }).wrote).toContain('secret-beta');

    const bundles = join(w.stateDir, 'bundles');
    const slots = join(w.stateDir, 'sandboxes');
    const otherPaths = [
      ...readdirSync(bundles).map((h) => join(bundles, h, 'index.js')),
      ...readdirSync(slots).map((s) => join(slots, s, 'code', 'index.js')),
      join(cp.dataDir, 'credentials.json'),
      '/etc/shadow',
    ];
    const r = await api(cp, 'POST', '/function/probe', { op: 'probe', dataDir: cp.dataDir, stateDir: w.stateDir, joinToken: cp.joinToken, otherPaths, forkTries: 200 }, alphaKey);
    expect(r.status, r.text).toBe(200);
    const p = r.body as Record<string, unknown> & { fork: { started: number; refused: string | null }; status: Record<string, string> };

    // its own unprivileged uid, no groups, no capabilities, no way to gain privileges
    expect(p['uid']).toBeGreaterThanOrEqual(1000);
    expect(p['uid']).not.toBe(process.getuid?.());
    expect(p['gid']).toBe(p['uid']);
    expect(p['groups']).toEqual(expect.not.arrayContaining([0]));
    expect(p.status['NoNewPrivs']).toBe('1');
    expect(p.status['CapEff']).toMatch(/^0+$/);
    expect(p.status['CapBnd']).toMatch(/^0+$/);
    // read-only code, writable private scratch that is also its cwd
    for (const k of ['writeOwnCode', 'createInCode', 'chmodCode']) expect(p[k], k).not.toBe('allowed');
    expect(p['writeScratch']).toBe('allowed');
    expect(p['writeCwd']).toBe('allowed');
    expect(p['cwd']).toBe(p['tmpdir']);
    expect(p['scratchListing']).not.toContain('secret-beta');
    // baton's secrets and other tenants' code and scratch are not there
    for (const k of ['readCredentials', 'readDatabase', 'readNodeIdentity', 'listBundles']) expect(p[k], k).not.toBe('allowed');
    expect(p['readOthers']).toHaveLength(otherPaths.length);
    for (const [i, res] of (p['readOthers'] as string[]).entries()) expect(res, otherPaths[i]).not.toBe('allowed');
    // no other process is visible, and the join token is nowhere
    expect((p['pids'] as string[]).length).toBeLessThanOrEqual(3);
    expect(p['tokenInProc']).toEqual([]);
    expect(p['tokenInEnv']).toBe(false);
    expect(p['envKeys']).not.toContain('BATON_JOIN_TOKEN');
    // setuid bits stripped at unpack; no device can be made, only harmless ones exist
    expect(p['setuidBits']).toBe(0);
    expect(p['mknod']).not.toBe(0);
    expect((p['devices'] as string[]).filter((d) => !['full', 'null', 'random', 'urandom', 'zero', 'fd', 'stdin', 'stdout', 'stderr'].includes(d))).toEqual([]);
    expect(p['hostRootDirs']).not.toContain('root');
    expect(p['hostRootDirs']).not.toContain('home');
    // the pids limit stops a fork bomb (the runner's own threads count too)
    expect(p.fork.refused).toBe('EAGAIN');
    expect(p.fork.started).toBeLessThan(64);

    // on the host: the join token is on no command line
    expect(hostProcessesWith(cp.joinToken)).toEqual([]);
  });

  it('a sandbox that outgrows its memory limit is killed alone: the call fails, the worker and other tenants go on', { timeout: 60_000 }, async () => {
    const r = await api(cp, 'POST', '/function/probe', { op: 'hog', mb: 600 }, alphaKey);
    expect(r.status, r.text).toBe(503);
    expect((r.body as { error: { code: string } }).error.code).toBe('memory_pressure');
    expect(w.proc.exitCode).toBeNull();
    const again = await api(cp, 'POST', '/function/probe', { op: 'remember', tenant: 'alpha' }, alphaKey);
    expect(again.status).toBe(200);
    const other = await api(cp, 'POST', '/function/probe', { op: 'remember', tenant: 'beta' }, betaKey);
    expect(other.status).toBe(200);
  });

  it('sandbox cgroups and directories are removed with their sandboxes, and the worker\'s own when it stops', { timeout: 60_000 }, async () => {
    const nodeId = (JSON.parse(readFileSync(join(w.stateDir, 'node.json'), 'utf8')) as { nodeId: string }).nodeId;
    const leaf = `baton-${nodeId.replace(/[^A-Za-z0-9_-]/g, '').slice(-12)}`;
    const groups = (): string[] => {
      const out: string[] = [];
      const walk = (d: string, depth: number): void => {
        if (depth > 6) return;
        for (const e of readdirSync(d, { withFileTypes: true })) {
          if (!e.isDirectory()) continue;
          if (e.name === leaf) out.push(...readdirSync(join(d, e.name), { withFileTypes: true }).filter((x) => x.isDirectory()).map((x) => join(d, e.name, x.name)), join(d, e.name));
          else walk(join(d, e.name), depth + 1);
        }
      };
      walk('/sys/fs/cgroup', 0);
      return out;
    };
    expect(groups().length).toBeGreaterThan(0);
    for (const ns of ['alpha', 'beta']) expect((await api(cp, 'DELETE', `/v1/namespaces/${ns}/functions/probe`)).status).toBe(200);
    await waitFor(async () => ((await sandboxes(cp)).length === 0 ? true : undefined), 10_000, () => 'sandboxes were not deleted');
    // only the stem cell's slot is left
    await waitFor(() => (readdirSync(join(w.stateDir, 'sandboxes')).length <= 1 ? true : undefined), 10_000, () => `slots left: ${readdirSync(join(w.stateDir, 'sandboxes')).join(', ')}`);
    await kill(w.proc, 'SIGTERM');
    expect(w.proc.exitCode).toBe(0);
    expect(groups()).toEqual([]);
  });
});

describe('without root', () => {
  it('a worker that cannot isolate sandboxes says once, at start, which protections are off', { timeout: 30_000 }, async () => {
    if (process.getuid?.() !== 0) {
      // already unprivileged: the ordinary worker start shows it
      const cp = await startControlPlane();
      const w = await startWorker(cp);
      expect(w.output()).toMatch(/sandbox isolation OFF/);
      await stopAll([cp.dataDir, w.stateDir]);
      return;
    }
    const cp = await startControlPlane();
    const stateDir = tempDir('nobody');
    chmodSync(stateDir, 0o777);
    const proc = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'worker', '--control-plane', cp.url.replace(/^http/, 'ws'), '--state-dir', stateDir, '--name', 'unprivileged'], {
      env: { ...process.env, BATON_JOIN_TOKEN: cp.joinToken, BATON_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => (/joined the control plane/.test(out) ? true : undefined), 20_000, () => `worker did not join:\n${out}`);
      const off = out.split('\n').filter((l) => l.includes('sandbox isolation OFF'));
      expect(off).toHaveLength(1);
      expect(off[0]).toContain('not root');
      expect(out).toMatch(/cgroups: no writable cgroup/);
    } finally {
      await kill(proc, 'SIGKILL');
      await stopAll([cp.dataDir, stateDir]);
    }
  });
});
