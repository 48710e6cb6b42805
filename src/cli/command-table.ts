import { Option, type Command } from 'commander';
import { CliError } from './cli-error.js';

/**
 * The `baton` command line as data. Every command is one entry: its words, its
 * help text, its arguments and options (declared here, so `--help` is complete
 * without loading anything) and `load`, which imports the module that does the
 * work only when the command runs. Registering a command therefore costs a few
 * objects, never the import of zod, SQLite, the control plane or the worker.
 */

/** Options of the `baton` program itself, as every command sees them. */
export interface GlobalOptions {
  gateway?: string;
  apiKey?: string;
  output: 'table' | 'json';
}

/**
 * What a command's `run` receives. `Opts` is the shape commander builds from
 * the entry's options (camel-cased long names), `Args` the positional arguments
 * in declared order; each implementation names both for itself.
 */
export interface Invocation<Opts extends object = Record<string, never>, Args extends readonly string[] = []> {
  readonly args: Args;
  readonly opts: Opts;
  readonly globals: GlobalOptions;
}

/**
 * A command's implementation module. `Invocation<never, never>` accepts a
 * `run` written for any particular options and arguments: the table entry, not
 * the type system, is what ties the two together (and the tests load them all).
 */
export interface CommandModule {
  run(inv: Invocation<never, never>): Promise<void>;
}

export interface OptionSpec {
  /** Commander syntax: `-n, --namespace <ns>`, `--verbose`, `--no-classes`, `-H, --header <h...>`. */
  flags: string;
  description: string;
  default?: string | number | boolean;
  /** Turns the text into the value; throw CliError to refuse it. */
  parse?: (value: string) => unknown;
  required?: boolean;
}

/** A word that only groups subcommands (`baton fn`, `baton ns`, `baton bench`). */
export interface GroupSpec {
  path: readonly string[];
  description: string;
}

export interface LeafSpec {
  /** The words after `baton`: `['fn', 'ls']`. The group before the last word must come earlier in the table. */
  path: readonly string[];
  description: string;
  /** Positional arguments in commander syntax, in order: `['<fn>']`. */
  args?: readonly string[];
  options?: readonly OptionSpec[];
  /** Hand every word after the command to the implementation unparsed; it parses (and documents) its own flags. */
  passThrough?: boolean;
  load: () => Promise<CommandModule>;
}

export type CommandSpec = GroupSpec | LeafSpec;

export function isLeaf(spec: CommandSpec): spec is LeafSpec {
  return 'load' in spec;
}

/**
 * A `load` for code that lives outside src/cli (benchmarks, the simulator) and
 * exports `entry(argv)`. A build without that code says so instead of failing
 * with a module error.
 */
export function externalTool(module: URL, entry: string, words: readonly string[]): () => Promise<CommandModule> {
  return async () => {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(module.href)) as Record<string, unknown>;
    } catch (e) {
      throw new CliError(`\`baton ${words.join(' ')}\` is not available in this build: ${(e as Error).message}`);
    }
    const fn = mod[entry];
    if (typeof fn !== 'function') throw new CliError(`\`baton ${words.join(' ')}\`: ${module.pathname} does not export ${entry}()`);
    const main = fn as (argv: string[]) => Promise<void>;
    return { run: (inv: Invocation<object, readonly string[]>) => main([...inv.args]) };
  };
}

function child(parent: Command, word: string): Command | undefined {
  return parent.commands.find((c) => c.name() === word);
}

/**
 * Add every entry of `table` to `program`, in order (which is the order of
 * `--help`). Throws on a table mistake: an unknown group, a repeated path.
 */
export function registerCommands(program: Command, table: readonly CommandSpec[], globals: () => GlobalOptions): void {
  for (const spec of table) {
    const words = spec.path;
    const name = words[words.length - 1];
    if (name === undefined) throw new Error('command table: an entry has an empty path');
    let parent = program;
    for (const word of words.slice(0, -1)) {
      const next = child(parent, word);
      if (next === undefined) throw new Error(`command table: "${words.join(' ')}" comes before its group "${word}"`);
      parent = next;
    }
    if (child(parent, name) !== undefined) throw new Error(`command table: "${words.join(' ')}" is declared twice`);
    const cmd = parent.command(name).description(spec.description);
    if (!isLeaf(spec)) continue;
    if (spec.passThrough === true) cmd.argument('[args...]').allowUnknownOption().helpOption(false);
    for (const a of spec.args ?? []) cmd.argument(a);
    for (const o of spec.options ?? []) cmd.addOption(toOption(o));
    const load = spec.load;
    cmd.action(async (...params: unknown[]) => {
      const self = params[params.length - 1] as Command;
      const mod = await load();
      // commander built opts from this entry's declarations, which is what the module's run expects
      await mod.run({ args: self.args as never, opts: self.opts<never>(), globals: globals() });
    });
  }
}

function toOption(o: OptionSpec): Option {
  const opt = new Option(o.flags, o.description);
  if (o.parse !== undefined) {
    const parse = o.parse;
    opt.argParser((v: string) => parse(v));
  }
  if (o.default !== undefined) opt.default(o.default);
  if (o.required === true) opt.makeOptionMandatory();
  return opt;
}
