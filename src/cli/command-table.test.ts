import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { externalTool, isLeaf, registerCommands, type CommandModule, type CommandSpec, type GlobalOptions, type Invocation } from './command-table.js';
import { commandTable } from './commands.js';

interface Seen {
  loads: string[];
  runs: { path: string; inv: Invocation<object, readonly string[]> }[];
}

/** A table whose loaders record what they were asked for instead of importing anything. */
function fakeTable(seen: Seen): CommandSpec[] {
  const load =
    (path: string) =>
    (): Promise<CommandModule> => {
      seen.loads.push(path);
      return Promise.resolve({
        run: (inv: Invocation<object, readonly string[]>) => {
          seen.runs.push({ path, inv });
          return Promise.resolve();
        },
      });
    };
  return [
    { path: ['fn'], description: 'functions' },
    { path: ['fn', 'get'], description: 'show one', args: ['<name>'], options: [{ flags: '-n, --namespace <ns>', description: 'namespace' }], load: load('fn get') },
    {
      path: ['serve'],
      description: 'serve',
      options: [
        { flags: '--port <port>', description: 'port', parse: Number, default: 8080 },
        { flags: '-f, --file <file>', description: 'file', required: true },
        { flags: '--no-classes', description: 'no classes' },
      ],
      load: load('serve'),
    },
    { path: ['tool'], description: 'a tool with its own flags', passThrough: true, load: load('tool') },
  ];
}

function program(table: CommandSpec[], globals: GlobalOptions = { output: 'table' }): { program: Command; out: () => string } {
  let out = '';
  const p = new Command('baton').exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  // subcommands inherit exitOverride and the output settings from the program they are added to
  registerCommands(p, table, () => globals);
  return { program: p, out: () => out };
}

describe('registerCommands', () => {
  it('declares every command, argument and option up front without loading any implementation', () => {
    const seen: Seen = { loads: [], runs: [] };
    const { program: p } = program(fakeTable(seen));
    expect(p.commands.map((c) => c.name())).toEqual(['fn', 'serve', 'tool']);
    const get = p.commands[0]?.commands[0];
    expect(get?.name()).toBe('get');
    expect(get?.helpInformation()).toMatch(/Usage: baton fn get \[options\] <name>/);
    expect(get?.helpInformation()).toMatch(/-n, --namespace <ns>\s+namespace/);
    expect(p.commands[1]?.helpInformation()).toMatch(/--port <port>\s+port \(default: 8080\)/);
    expect(seen.loads).toEqual([]);
  });

  it('loads only the command that runs and hands it its arguments, options and the global options', async () => {
    const seen: Seen = { loads: [], runs: [] };
    const globals: GlobalOptions = { gateway: 'http://gw:1', output: 'json' };
    const { program: p } = program(fakeTable(seen), globals);
    await p.parseAsync(['fn', 'get', 'hello', '-n', 'team'], { from: 'user' });
    expect(seen.loads).toEqual(['fn get']);
    expect(seen.runs).toEqual([{ path: 'fn get', inv: { args: ['hello'], opts: { namespace: 'team' }, globals } }]);
  });

  it('applies parsers, defaults, negations and required options', async () => {
    const seen: Seen = { loads: [], runs: [] };
    const { program: p, out } = program(fakeTable(seen));
    await p.parseAsync(['serve', '--port', '9090', '-f', 'x.yaml', '--no-classes'], { from: 'user' });
    expect(seen.runs[0]?.inv.opts).toEqual({ port: 9090, file: 'x.yaml', classes: false });
    await p.parseAsync(['serve', '-f', 'y.yaml'], { from: 'user' });
    expect(seen.runs[1]?.inv.opts).toEqual({ port: 8080, file: 'y.yaml', classes: true });
    await expect(p.parseAsync(['serve'], { from: 'user' })).rejects.toThrow(/required option '-f, --file <file>'/);
    expect(out()).toMatch(/required option/);
    expect(seen.runs).toHaveLength(2);
  });

  it('passes every word after a pass-through command on unparsed, flags and --help included', async () => {
    const seen: Seen = { loads: [], runs: [] };
    const { program: p } = program(fakeTable(seen));
    await p.parseAsync(['tool', '--runs', '3', 'x', '--help'], { from: 'user' });
    expect(seen.runs[0]?.inv.args).toEqual(['--runs', '3', 'x', '--help']);
  });

  it('refuses a subcommand before its group and a path declared twice', () => {
    const load = (): Promise<CommandModule> => Promise.reject(new Error('not loaded in this test'));
    expect(() => registerCommands(new Command(), [{ path: ['fn', 'ls'], description: 'x', load }], () => ({ output: 'table' }))).toThrow(/"fn ls" comes before its group "fn"/);
    expect(() =>
      registerCommands(
        new Command(),
        [
          { path: ['status'], description: 'x', load },
          { path: ['status'], description: 'y', load },
        ],
        () => ({ output: 'table' }),
      ),
    ).toThrow(/"status" is declared twice/);
    expect(() => registerCommands(new Command(), [{ path: [], description: 'x' }], () => ({ output: 'table' }))).toThrow(/empty path/);
  });
});

describe('externalTool', () => {
  it('says which command is missing from this build instead of failing with a module error', async () => {
    const load = externalTool(new URL('../../no-such-dir/run.js', import.meta.url), 'runNothing', ['bench', 'nothing']);
    await expect(load()).rejects.toThrow(/^`baton bench nothing` is not available in this build: /);
  });
});

describe("baton's command table", () => {
  const table = commandTable();

  it('registers cleanly: groups before their commands, no path twice', () => {
    expect(() => registerCommands(new Command('baton'), table, () => ({ output: 'table' }))).not.toThrow();
  });

  it('has the commands the SPEC names, each leaf with a loader and a description', () => {
    const paths = table.map((s) => s.path.join(' '));
    for (const p of ['controlplane', 'worker', 'dev', 'deploy', 'fn ls', 'fn get', 'fn rm', 'ns create', 'ns ls', 'invoke', 'nodes', 'status', 'bench cli', 'sim']) expect(paths).toContain(p);
    for (const s of table) expect(s.description).not.toBe('');
    // a group is a word that other entries extend; everything else must be runnable
    for (const s of table) if (!isLeaf(s)) expect(table.some((o) => o.path.length > s.path.length && o.path[0] === s.path[0])).toBe(true);
  });
});
