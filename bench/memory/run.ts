import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { describeMachine } from '../lib/machine.js';
import { measureInChild } from './gc-child.js';
import { BUDGETS, type MemoryConfig, type PerObject } from './measure.js';

const HELP = `baton bench memory — control-plane heap per sandbox and per function

  --workers N          emulated workers the sandboxes are spread over (default 1000)
  --functions N        functions the sandboxes belong to (default 1000)
  --sandboxes N        sandboxes in all, the same number per function (default 100000)
  --idle-functions N   functions deployed with no sandbox, for the per-function figure (default 10000)
  --rounds N           measured rounds, after one unmeasured warm-up round (default 3)
  --out FILE           write the results as JSON

Measures the real control-plane code in a child process started with
--expose-gc: the dispatcher, node registry, placement, metrics, function
service (SQLite in memory), log collector and autoscaler, wired as the
control plane wires them, with the worker gateway fed through an in-memory
stand-in for its WebSocket. Workers say hello and heartbeat; functions like
examples/hello are deployed through the function service, each with its own
bundle; the dispatcher creates every function's sandboxes as the autoscaler
asks for them, and the workers report them ready (with a pid, as process
workers do). Per sandbox: the heap retained after they are all ready, less
the heap before, over their number; per function: the same around deploying
functions that have no sandbox; an active function: what the autoscaler's
history of a function adds once it spans a stable window (60 ticks). The
heap is V8's used heap after full collections, less compiled code (not
state). Budgets: ${BUDGETS.sandboxBytes} B per sandbox, ${BUDGETS.functionBytes} B per function.`;

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name}: expected a positive integer, got "${v}"`);
  return n;
}

function row(what: string, p: PerObject, budget: number | undefined): string {
  const verdict = budget === undefined ? '' : p.max <= budget ? 'within' : 'OVER';
  return `| ${what} | ${p.mean.toFixed(1)} | ${p.min.toFixed(1)} | ${p.max.toFixed(1)} | ${budget ?? ''} | ${verdict} |\n`;
}

export async function runMemoryCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '1000' },
      functions: { type: 'string', default: '1000' },
      sandboxes: { type: 'string', default: '100000' },
      'idle-functions': { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '3' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const functions = positiveInt('functions', values.functions);
  const sandboxes = positiveInt('sandboxes', values.sandboxes);
  if (sandboxes % functions !== 0) throw new RangeError(`--sandboxes (${sandboxes}) must be a multiple of --functions (${functions}): every function gets the same number`);
  const cfg: MemoryConfig = {
    workers: positiveInt('workers', values.workers),
    functions,
    sandboxesPerFunction: sandboxes / functions,
    idleFunctions: positiveInt('idle-functions', values['idle-functions']),
    rounds: positiveInt('rounds', values.rounds),
  };
  const started = performance.now();
  const figures = await measureInChild(cfg, (line) => process.stderr.write(`  ${line}\n`));
  const machine = describeMachine();
  const report = {
    machine,
    config: { ...cfg, sandboxes },
    budgets: BUDGETS,
    bytesPerSandbox: figures.perSandbox,
    bytesPerFunction: figures.perFunction,
    bytesAddedPerActiveFunction: figures.perActiveFunction,
    bytesPerWorker: figures.perWorker,
    heapWithSandboxesBytes: figures.heapWithSandboxes,
    heapWithFunctionsBytes: figures.heapWithFunctions,
    withinBudgets: figures.perSandbox.max <= BUDGETS.sandboxBytes && figures.perFunction.max <= BUDGETS.functionBytes,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
  if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(
    `control-plane heap: ${sandboxes} sandboxes of ${functions} functions on ${cfg.workers} workers; ${cfg.idleFunctions} functions without sandboxes; ${cfg.rounds} round${cfg.rounds === 1 ? '' : 's'}\n` +
      `on ${String(machine['cpu'])} × ${String(machine['cores'])}, ${String(machine['os'])}, Node ${String(machine['node'])}\n`,
  );
  process.stdout.write('| bytes each | mean | min | max | budget | |\n|---|---:|---:|---:|---:|---|\n');
  process.stdout.write(row('sandbox (ready)', figures.perSandbox, BUDGETS.sandboxBytes));
  process.stdout.write(row('function (deployed, no sandbox)', figures.perFunction, BUDGETS.functionBytes));
  process.stdout.write(row('+ autoscaler history of a function with sandboxes', figures.perActiveFunction, undefined));
  process.stdout.write(row('worker connection (incl. the emulated link)', figures.perWorker, undefined));
}
