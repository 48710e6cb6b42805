import type { Command } from 'commander';
import { CliError } from '../client.js';

/**
 * Commands whose code lives outside src/cli (benchmarks, simulator). They parse
 * their own arguments, so `baton sim --help` shows the simulator's help, and
 * are loaded only when used.
 */
const TOOLS = [
  { path: ['bench', 'churn'], what: 'sandbox churn: cold-start sweep against emulated workers (Dirigent method)', module: '../../../bench/churn/run.js', entry: 'runChurnCli' },
  { path: ['bench', 'coldstart'], what: 'real cold starts on the node runtime, end to end', module: '../../../bench/coldstart/run.js', entry: 'runColdStartCli' },
  { path: ['bench', 'crowding'], what: 'critical latency alone, under a batch flood, and with price classes off (real process sandboxes)', module: '../../../bench/crowding/run.js', entry: 'runCrowdingCli' },
  { path: ['bench', 'warm'], what: 'warm-path throughput and control-plane overhead (emulated sandboxes)', module: '../../../bench/warm/run.js', entry: 'runWarmCli' },
  { path: ['sim'], what: 'price-class scheduling simulator (`baton sim --help`)', module: '../../sim/cli.js', entry: 'runSimCli' },
] as const;

export function registerToolCommands(program: Command): void {
  const bench = program.command('bench').description('benchmarks (see bench/README.md)');
  for (const tool of TOOLS) {
    const parent = tool.path.length === 2 ? bench : program;
    parent
      .command(tool.path[tool.path.length - 1] as string)
      .description(tool.what)
      .allowUnknownOption()
      .helpOption(false)
      .argument('[args...]')
      .action(async (args: string[]) => {
        let mod: Record<string, unknown>;
        try {
          mod = (await import(new URL(tool.module, import.meta.url).href)) as Record<string, unknown>;
        } catch (e) {
          throw new CliError(`\`baton ${tool.path.join(' ')}\` is not available in this build: ${(e as Error).message}`);
        }
        const run = mod[tool.entry] as (argv: string[]) => Promise<void>;
        await run(args);
      });
  }
}
