/**
 * Which scheduler core owns a function: its key (`namespace/name`) hashed
 * with 32-bit FNV-1a, modulo the number of cores. The control plane routes
 * calls with it and the worker picks the data link of a sandbox with it, so
 * both must compute the same: it is part of the protocol.
 */
export function ownerCore(functionKey: string, cores: number): number {
  if (cores <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < functionKey.length; i++) {
    h ^= functionKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % cores;
}
