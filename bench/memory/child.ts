import { measureMemory, type MemoryConfig } from './measure.js';

/**
 * Entry of the measuring process, started by measureInChild with
 * --expose-gc (`baton` itself runs without it): reads the configuration
 * as JSON from argv, prints progress on stderr and the figures as one JSON
 * line on stdout.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('bench/memory/child.js must run with --expose-gc\n');
  process.exit(2);
}
const cfg = JSON.parse(process.argv[2] ?? '{}') as MemoryConfig;
const figures = await measureMemory(cfg, gc, (line) => process.stderr.write(`${line}\n`));
process.stdout.write(`${JSON.stringify(figures)}\n`);
