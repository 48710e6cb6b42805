export interface Resident {
  id: number;
  rank: number;
  memMb: number;
  running: boolean;
  swapped: boolean;
  /** Holds no invocation at all (a warm sandbox between calls): evicting it loses no work. */
  idle?: boolean;
}

export interface MemoryDecision {
  /** Idle residents to remove (no call is lost; the function starts again elsewhere when needed). */
  evict: number[];
  swapOut: number[];
  kill: number[];
}

/**
 * Price-class memory management on one machine (seeds 000/001). Functions
 * declare no memory; their use grows while they live. When what is in RAM
 * exceeds the machine's RAM: first evict idle residents (warm sandboxes with no
 * call in them), lowest class first; then swap out functions that are not
 * running, lowest class first (larger first within a class, fewer moves), then
 * running ones, again lowest class first; only when swap is full, kill, lowest
 * class and not-running first. Swapping back in happens when a function is
 * about to run (the caller marks it resident and calls this again to make room).
 */
export function relieveMemoryPressure(residents: readonly Resident[], ramMb: number, swapMb: number): MemoryDecision {
  let inRam = 0;
  let swapUsed = 0;
  for (const r of residents) {
    if (r.swapped) swapUsed += r.memMb;
    else inRam += r.memMb;
  }
  const out: MemoryDecision = { evict: [], swapOut: [], kill: [] };
  if (inRam <= ramMb) return out;
  const order = (a: Resident, b: Resident): number => a.rank - b.rank || b.memMb - a.memMb || a.id - b.id;
  for (const r of residents.filter((x) => x.idle === true && !x.swapped).sort(order)) {
    if (inRam <= ramMb) return out;
    out.evict.push(r.id);
    inRam -= r.memMb;
  }
  if (inRam <= ramMb) return out;
  // Not running first (they lose nothing by waiting on disk), then running ones
  // (the OS pages them while they run); lowest class first within each group.
  const swappable = residents.filter((r) => !r.swapped && r.idle !== true).sort((a, b) => Number(a.running) - Number(b.running) || order(a, b));
  const moved = new Set<number>();
  for (const r of swappable) {
    if (inRam <= ramMb) break;
    if (swapUsed + r.memMb <= swapMb) {
      out.swapOut.push(r.id);
      moved.add(r.id);
      swapUsed += r.memMb;
      inRam -= r.memMb;
    }
  }
  if (inRam <= ramMb) return out;
  // Swap is exhausted: kill, lowest class and not-running first.
  for (const r of swappable.filter((x) => !moved.has(x.id))) {
    if (inRam <= ramMb) break;
    out.kill.push(r.id);
    inRam -= r.memMb;
  }
  return out;
}
