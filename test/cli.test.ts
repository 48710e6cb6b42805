import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readData } from '../src/cli/commands/invoke.js';
import { resolveTarget } from '../src/cli/client.js';
import { loadManifest } from '../src/cli/manifest.js';
import { manifestJsonSchema } from '../src/cli/manifest-schema.js';
import { BIN, REPO, startControlPlane, startWorker, stopAll, tempDir, type CpHandle } from './helpers/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function manifest(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('manifest loading', () => {
  it('reads the examples', () => {
    const m = loadManifest(join(REPO, 'examples/hello/baton.yaml'));
    expect(m.functions.map((f) => f.name)).toEqual(['hello']);
    expect(m.functions[0]?.dir).toBe(join(REPO, 'examples/hello'));
    expect(loadManifest(join(REPO, 'examples/http-echo/baton.yaml')).functions[0]?.spec['runtime']).toBe('http');
  });

  it('names the file, the field and the line of a bad value', () => {
    const f = manifest('bad.yaml', 'version: 1\nfunctions:\n  hello:\n    runtime: node\n    handler: i.js\n    scale:\n      max: 0\n');
    expect(() => loadManifest(f)).toThrow(/bad\.yaml: functions\.hello\.scale\.max: .*>=1.*\(line 7\)/);
  });

  it('rejects unknown fields, missing handlers, bad names, bad versions and broken YAML', () => {
    expect(() => loadManifest(manifest('a.yaml', 'version: 1\nfunctions:\n  f:\n    runtime: node\n    handler: x.js\n    memory: 128\n'))).toThrow(/functions\.f.*memory/);
    expect(() => loadManifest(manifest('b.yaml', 'version: 1\nfunctions:\n  f:\n    runtime: node\n'))).toThrow(/functions\.f\.handler/);
    expect(() => loadManifest(manifest('c.yaml', 'version: 1\nfunctions:\n  Bad_Name:\n    runtime: http\n    command: [x]\n'))).toThrow(/functions\.Bad_Name: invalid function name/);
    expect(() => loadManifest(manifest('d.yaml', 'version: 2\nfunctions:\n  f:\n    runtime: http\n    command: [x]\n'))).toThrow(/d\.yaml: version/);
    expect(() => loadManifest(manifest('e.yaml', 'version: 1\nfunctions: [\n'))).toThrow(/e\.yaml/);
    expect(() => loadManifest(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read/);
  });

  it('the committed JSON Schema matches the validating schema', () => {
    const committed = JSON.parse(readFileSync(join(REPO, 'schema/baton.schema.json'), 'utf8')) as unknown;
    expect(committed).toEqual(manifestJsonSchema());
  });
});

describe('CLI arguments', () => {
  it('-d takes text, @file and - for stdin', () => {
    const f = join(dir, 'payload.bin');
    writeFileSync(f, Buffer.from([0, 1, 2]));
    expect(Buffer.from(readData('hi') as Uint8Array).toString()).toBe('hi');
    expect([...(readData(`@${f}`) as Uint8Array)]).toEqual([0, 1, 2]);
    expect(Buffer.from(readData('-', () => Buffer.from('piped')) as Uint8Array).toString()).toBe('piped');
    expect(() => readData('@/nonexistent/file')).toThrow(/cannot read file/);
  });

  it('finds the gateway: flags, then environment, then ./.baton/credentials.json', () => {
    const cwd = mkdtempSync(join(dir, 'cwd-'));
    expect(() => resolveTarget({}, cwd)).toThrow(/no gateway/);
    const creds = join(cwd, '.baton');
    mkdirSync(creds);
    writeFileSync(join(creds, 'credentials.json'), JSON.stringify({ gateway: 'http://file:1/', apiKey: 'kfile' }));
    expect(resolveTarget({}, cwd)).toEqual({ gateway: 'http://file:1', apiKey: 'kfile' });
    expect(resolveTarget({ gateway: 'http://flag:2', apiKey: 'kflag' }, cwd)).toEqual({ gateway: 'http://flag:2', apiKey: 'kflag' });
    // a gateway without a scheme is plain http; a non-http one is refused clearly
    expect(resolveTarget({ gateway: '127.0.0.1:8080', apiKey: 'k' }, cwd).gateway).toBe('http://127.0.0.1:8080');
    expect(() => resolveTarget({ gateway: 'ws://127.0.0.1:8080', apiKey: 'k' }, cwd)).toThrow(/expected http:\/\/ or https:\/\/, got ws:/);
    expect(() => resolveTarget({ gateway: 'http://[bad', apiKey: 'k' }, cwd)).toThrow(/is not a URL/);
  });
});

describe('the baton command against a real cluster', () => {
  let cp: CpHandle;
  const dirs: string[] = [];
  const run = (...args: string[]): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [BIN, '--gateway', cp.url, '--api-key', cp.apiKey, ...args], { encoding: 'utf8', cwd: tempDir('cli-cwd') });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir, (await startWorker(cp)).stateDir);
  });
  afterAll(() => stopAll(dirs));

  it('deploys the hello example, invokes it, lists and removes it', () => {
    const d = run('deploy', '-f', join(REPO, 'examples/hello/baton.yaml'));
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/hello: created \(namespace default, version 1/);
    expect(run('deploy', '-f', join(REPO, 'examples/hello/baton.yaml')).out).toMatch(/hello: unchanged/);
    const inv = run('invoke', 'hello', '-d', 'baton');
    expect(inv.code).toBe(0);
    expect(inv.out).toBe('hello, baton!\n');
    const ls = JSON.parse(run('-o', 'json', 'fn', 'ls').out) as { functions: { name: string }[] };
    expect(ls.functions.map((f) => f.name)).toContain('hello');
    const nodes = JSON.parse(run('-o', 'json', 'nodes').out) as { nodes: { state: string }[] };
    expect(nodes.nodes[0]?.state).toBe('ready');
    expect(run('status').out).toMatch(/workers:\s+1 ready of 1/);
    expect(run('fn', 'rm', 'hello').code).toBe(0);
    const gone = run('invoke', 'hello');
    expect(gone.code).not.toBe(0);
    expect(gone.err).toMatch(/function "hello" not found.*not_found/);
  });

  it('a bad manifest exits non-zero naming the field; an unreachable gateway says so', () => {
    const bad = run('deploy', '-f', manifest('bad2.yaml', 'version: 1\nfunctions:\n  f:\n    runtime: node\n    handler: i.js\n    timeout: soon\n'));
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/functions\.f\.timeout/);
    const r = spawnSync(process.execPath, [BIN, '--gateway', 'http://127.0.0.1:1', '--api-key', 'x', 'fn', 'ls'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/cannot reach the control plane at http:\/\/127\.0\.0\.1:1/);
  });

  it('ns create honours -o json, -o yaml is a clean error, a gateway without a scheme works', () => {
    const created = run('-o', 'json', 'ns', 'create', 'team-json');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.out)).toEqual({ namespace: 'team-json', apiKey: expect.stringMatching(/^bk_/) as unknown });
    const yaml = run('-o', 'yaml', 'fn', 'ls');
    expect(yaml.code).not.toBe(0);
    expect(yaml.err).toBe('baton: -o yaml: unknown output format; use table or json\n');
    const bare = spawnSync(process.execPath, [BIN, '--gateway', cp.url.replace(/^http:\/\//, ''), '--api-key', cp.apiKey, '-o', 'json', 'ns', 'ls'], { encoding: 'utf8' });
    expect(bare.status).toBe(0);
    expect((JSON.parse(bare.stdout) as { namespaces: { name: string }[] }).namespaces.map((n) => n.name)).toContain('team-json');
  });

  it('async invocations, activations, their logs, usage and budgets from the command line', { timeout: 60_000 }, async () => {
    expect(run('deploy', '-f', join(REPO, 'examples/hello/baton.yaml')).code).toBe(0);
    const accepted = run('invoke', 'hello', '-d', 'later', '--async');
    expect(accepted.code, accepted.err).toBe(0);
    const id = accepted.out.trim();
    expect(id).toMatch(/^call-/);
    let result = run('activation', 'result', id);
    for (let i = 0; i < 100 && result.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      result = run('activation', 'result', id);
    }
    expect(result.out).toBe('hello, later!\n');
    const rec = JSON.parse(run('activation', 'get', id).out) as { id: string; status: string; async: boolean };
    expect(rec).toMatchObject({ id, status: 'success', async: true });
    const ls = run('activation', 'ls', '--function', 'hello');
    expect(ls.out).toMatch(/ID\s+FUNCTION\s+CLASS\s+STATUS/);
    expect(ls.out).toContain(id);
    expect(run('activation', 'logs', id).out).toMatch(new RegExp(`${id}.*greeting later`));
    const usage = run('usage');
    expect(usage.code, usage.err).toBe(0);
    expect(usage.out).toMatch(/hello\s+standard\s+\d+/);
    expect(run('ns', 'budget', 'default', '1000').out).toMatch(/budget:\s+1000 per month/);
    const shown = JSON.parse(run('-o', 'json', 'ns', 'budget', 'default').out) as { monthly: number; throttled: string[] };
    expect(shown.monthly).toBe(1000);
    expect(shown.throttled).toEqual([]);
    expect(run('ns', 'budget', 'default', 'none').out).toMatch(/budget:\s+none/);
    const bad = run('ns', 'budget', 'default', 'lots');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/expected a non-negative number/);
  });
});
