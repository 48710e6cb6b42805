import { Command, CommanderError } from 'commander';
import { BatonError } from '../common/errors.js';
import { CliError } from './cli-error.js';
import { registerCommands, type GlobalOptions } from './command-table.js';
import { commandTable } from './commands.js';

/**
 * The `baton` program. Only commander, the command table and the option
 * parsers load here; each command imports its implementation when it runs
 * (see commands.ts), so `baton --version` or `baton fn ls` never pays for the
 * control plane, the worker, SQLite, zod or yaml.
 */
export function buildProgram(): Command {
  const program = new Command('baton')
    .description('baton: a serverless cluster manager with price-class scheduling')
    .version('0.1.0')
    .option('--gateway <url>', 'control plane URL (or BATON_GATEWAY; default from ./.baton/credentials.json)')
    .option('--api-key <key>', 'API key (or BATON_API_KEY; default from ./.baton/credentials.json)')
    .option('-o, --output <format>', 'table or json', 'table')
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', () => {
      const o = program.opts<{ output: string }>().output;
      if (o !== 'table' && o !== 'json') throw new CliError(`-o ${o}: unknown output format; use table or json`);
    });
  registerCommands(program, commandTable(), () => program.opts<GlobalOptions>());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    if (e instanceof CliError || e instanceof BatonError) {
      process.stderr.write(`baton: ${e.message}\n`);
      process.exitCode = e instanceof CliError ? e.exitCode : 1;
      return;
    }
    process.stderr.write(`baton: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}
