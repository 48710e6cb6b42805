import { cpus, totalmem } from 'node:os';

/** The machine a wall-clock measurement ran on. */
export function describeHost(): Record<string, string | number> {
  return { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version };
}
