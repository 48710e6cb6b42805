import { Command, CommanderError } from 'commander';
import { BatonError } from '../common/errors.js';
import { CliError } from './client.js';
import { registerClusterCommands } from './commands/cluster.js';
import { registerFunctionCommands } from './commands/functions.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerServerCommands } from './commands/server.js';
import { registerToolCommands } from './commands/tools.js';

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
  const globals = (): { gateway?: string; apiKey?: string; output: string } => program.opts();
  registerServerCommands(program);
  registerFunctionCommands(program, globals);
  registerClusterCommands(program, globals);
  registerLogsCommand(program, globals);
  registerToolCommands(program);
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
