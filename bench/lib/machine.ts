import { cpus, release, totalmem, type as osType } from 'node:os';

/** What a benchmark result was measured on. */
export function describeMachine(): Record<string, string | number> {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    // the kernel version without the distribution's or host's local suffix (6.1.0-18-amd64 → 6.1.0)
    os: `${osType()} ${/^\d+(\.\d+)*/.exec(release())?.[0] ?? release()}`,
    node: process.version,
  };
}
