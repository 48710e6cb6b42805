import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isLeaf, type LeafSpec } from '../src/cli/command-table.js';
import { commandTable } from '../src/cli/commands.js';
import { BIN, FIXTURES, tempDir } from './helpers/cluster.js';

/**
 * The command table against the built `baton`: every command's help works,
 * every lazy import resolves, and the cheap commands stay cheap (they do not
 * load the server-side modules).
 */

const table = commandTable();
const dir = tempDir('cli-commands');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baton(args: string[], nodeArgs: string[] = [], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...nodeArgs, BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, BATON_GATEWAY: '', BATON_API_KEY: '', ...env } });
}

/** The long flag of a commander flags string: `-n, --namespace <ns>` → `--namespace`. */
function longFlag(flags: string): string {
  return /--[\w-]+/.exec(flags)?.[0] ?? flags;
}

describe('baton <command> --help, for every command in the table', () => {
  it.each(table.map((s) => [s.path.join(' '), s] as const))('baton %s --help', (_name, spec) => {
    const r = baton([...spec.path, '--help']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    if (isLeaf(spec) && spec.passThrough === true) {
      // the tool's own help: reaching it means its module was found and loaded
      expect(r.stdout).toMatch(new RegExp(`^baton ${spec.path.join(' ')}\\b`));
      return;
    }
    expect(r.stdout).toContain(`Usage: baton ${spec.path.join(' ')}`);
    expect(r.stdout).toContain(spec.description.slice(0, 40));
    if (!isLeaf(spec)) {
      for (const sub of table.filter((s) => s.path.length === spec.path.length + 1 && s.path[0] === spec.path[0])) expect(r.stdout).toContain(sub.path.at(-1));
      return;
    }
    for (const o of spec.options ?? []) expect(r.stdout).toContain(longFlag(o.flags));
  });
});

describe('lazy implementations', () => {
  const own = table.filter((s): s is LeafSpec => isLeaf(s) && s.passThrough !== true);
  it.each(own.map((s) => [s.path.join(' '), s] as const))('baton %s loads a module with run()', async (_name, spec) => {
    const mod = await spec.load();
    expect(typeof mod.run).toBe('function');
  });
});

describe('what a command loads', () => {
  const register = pathToFileURL(join(FIXTURES, 'import-trace/register.mjs')).href;
  const HEAVY = [
    /\/node_modules\/(zod|yaml|pino|msgpackr|better-sqlite3|uWebSockets\.js|ws|piscina|prom-client)\//,
    /\/dist\/src\/(controlplane|dataplane|worker|scheduler|storage|sandbox|sim|protocol|policies)\//,
    /\/dist\/bench\//,
  ];
  let n = 0;
  const loaded = (args: string[]): { urls: string[]; status: number | null; stderr: string } => {
    const trace = join(dir, `trace-${n++}.txt`);
    writeFileSync(trace, '');
    const r = baton(args, ['--import', register], { BATON_IMPORT_TRACE: trace });
    return { urls: readFileSync(trace, 'utf8').split('\n').filter((l) => l !== ''), status: r.status, stderr: r.stderr };
  };
  const heavy = (urls: string[]): string[] => urls.filter((u) => HEAVY.some((re) => re.test(u)));

  it('--version and --help load commander and the table only', () => {
    for (const args of [['--version'], ['--help'], ['worker', '--help'], ['deploy', '--help']]) {
      const r = loaded(args);
      expect(r.status).toBe(0);
      expect(r.urls.some((u) => u.includes('/node_modules/commander/'))).toBe(true);
      expect(heavy(r.urls)).toEqual([]);
      expect(r.urls.filter((u) => u.includes('/dist/src/cli/commands/'))).toEqual([]);
    }
  });

  const clientCommands = [['fn', 'ls'], ['fn', 'get', 'f'], ['fn', 'rm', 'f'], ['ns', 'ls'], ['ns', 'create', 'team'], ['invoke', 'f', '-d', 'x'], ['nodes'], ['status']];
  it.each(clientCommands.map((a) => [a.join(' '), a] as const))('baton %s loads no server-side module', (_name, args) => {
    const r = loaded(['--gateway', 'http://127.0.0.1:1', '--api-key', 'k', ...args]);
    expect(r.stderr).toMatch(/cannot reach the control plane/);
    expect(r.urls.some((u) => u.includes(`/dist/src/cli/commands/${args[0] ?? ''}`))).toBe(true);
    expect(heavy(r.urls)).toEqual([]);
  });

  it('deploy loads the manifest parser when it runs, and the trace sees it', () => {
    const r = loaded(['deploy', '-f', join(dir, 'missing.yaml')]);
    expect(r.stderr).toMatch(/missing\.yaml: cannot read/);
    expect(r.urls.some((u) => u.includes('/node_modules/yaml/'))).toBe(true);
  });
});

describe('flags the control plane cannot honour are refused, not ignored', () => {
  it('--scheduler-threads outside 1-256 exits with an error naming the flag and the range', () => {
    for (const n of ['0', '300']) {
      const r = baton(['controlplane', '--scheduler-threads', n, '--port', '0', '--data-dir', join(dir, 'sched')]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`--scheduler-threads ${n}: expected 1 to 256 scheduler cores`));
    }
  });
});
