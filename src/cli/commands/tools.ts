import type { Command } from 'commander';
import { CliError } from '../client.js';

/** Load a compiled module that lives outside src/cli (benchmarks, simulator) with a clear error if it is missing. */
async function load<T>(relative: string, what: string): Promise<T> {
  try {
    return (await import(new URL(relative, import.meta.url).href)) as T;
  } catch (e) {
    throw new CliError(`${what} is not available in this build: ${(e as Error).message}`);
  }
}

export function registerToolCommands(program: Command): void {
  const bench = program.command('bench').description('benchmarks (see bench/README.md)');
  bench
    .command('churn')
    .description('sandbox churn: cold-start sweep against emulated workers (Dirigent method)')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      const m = await load<{ runChurnCli(argv: string[]): Promise<void> }>('../../../bench/churn/run.js', 'the churn benchmark');
      await m.runChurnCli(args);
    });
  bench
    .command('coldstart')
    .description('real cold starts on the node runtime, end to end')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      const m = await load<{ runColdStartCli(argv: string[]): Promise<void> }>('../../../bench/coldstart/run.js', 'the cold-start benchmark');
      await m.runColdStartCli(args);
    });
  program
    .command('sim')
    .description('price-class scheduling simulator (`baton sim --help`)')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      const m = await load<{ runSimCli(argv: string[]): Promise<void> }>('../../sim/cli.js', 'the simulator');
      await m.runSimCli(args);
    });
}
