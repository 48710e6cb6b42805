import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, REPO, kill, tempDir, waitFor } from './helpers/cluster.js';

describe('baton dev (the README start command)', () => {
  const dir = tempDir('dev');
  const proc = spawn(process.execPath, [BIN, 'dev', '--port', '0'], { cwd: dir, env: { ...process.env, BATON_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  afterAll(() => kill(proc, 'SIGKILL'));

  it('starts a control plane and a local worker, and the hello example deploys and answers from the same directory', async () => {
    await waitFor(() => (/api key: \S+/.test(out) ? true : undefined), 20_000, () => `baton dev did not come up:\n${out}`);
    const creds = JSON.parse(readFileSync(join(dir, '.baton/credentials.json'), 'utf8')) as { gateway: string; apiKey: string; joinToken: string };
    expect(out).toContain(`gateway: ${creds.gateway}`);
    expect(out).toContain(`api key: ${creds.apiKey}`);
    // client commands find the cluster through ./.baton/credentials.json
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, BATON_GATEWAY: '', BATON_API_KEY: '' } });
    const nodes = JSON.parse(run('-o', 'json', 'nodes').stdout) as { nodes: { name: string; state: string; runtime: string }[] };
    expect(nodes.nodes).toEqual([expect.objectContaining({ name: 'local', state: 'ready', runtime: 'process' })]);
    expect(run('deploy', '-f', join(REPO, 'examples/hello/baton.yaml')).status).toBe(0);
    const inv = run('invoke', 'hello', '-d', 'dev');
    expect(inv.stderr).toBe('');
    expect(inv.stdout).toBe('hello, dev!\n');
    const curl = await fetch(`${creds.gateway}/function/hello`, { method: 'POST', headers: { authorization: `Bearer ${creds.apiKey}` }, body: 'curl' });
    expect(await curl.text()).toBe('hello, curl!\n');
    // Ctrl-C stops the worker (and its sandboxes) and the control plane
    await kill(proc, 'SIGINT');
    expect(proc.exitCode).toBe(0);
    expect(out).not.toMatch(/"level":50/); // no error logged on the way down
  });
});
