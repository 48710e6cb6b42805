const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parse a duration such as `250ms`, `30s`, `5m`, `1h` or `1m30s` into
 * milliseconds. A bare number is taken as milliseconds. Throws RangeError with
 * the offending text.
 */
export function parseDuration(input: string | number, what = 'duration'): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`${what}: expected a non-negative number of milliseconds, got ${input}`);
    return input;
  }
  const text = input.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length) {
    throw new RangeError(`${what}: cannot read "${input}" as a duration (examples: 500ms, 30s, 5m, 1h)`);
  }
  return total;
}
