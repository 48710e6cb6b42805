import type { Rng } from './rng.js';

/**
 * Power-of-k-choices: sample k distinct indices out of n and return the one
 * whose load is smallest. Ties go to the earliest sample. With k ≥ n every
 * index is examined. Returns -1 when n is 0.
 */
export function powerOfK(n: number, k: number, load: (i: number) => number, rng: Rng): number {
  if (n <= 0) return -1;
  let best = -1;
  let bestLoad = Infinity;
  if (k >= n) {
    for (let i = 0; i < n; i++) {
      const l = load(i);
      if (l < bestLoad) {
        best = i;
        bestLoad = l;
      }
    }
    return best;
  }
  // k distinct samples; k is small, so a short list beats a shuffle of n
  const seen: number[] = [];
  while (seen.length < k) {
    const i = rng.int(n);
    if (seen.includes(i)) continue;
    seen.push(i);
    const l = load(i);
    if (l < bestLoad) {
      best = i;
      bestLoad = l;
    }
  }
  return best;
}
