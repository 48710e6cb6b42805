import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Rng } from '../policies/rng.js';
import type { Invocation } from './workload.js';

/**
 * Trace-driven workloads in the two formats of the InVitro / Azure Functions
 * samples:
 * - a CSV `app,func,end_timestamp,duration` (seconds), one row per invocation
 *   (Azure Functions 2021): arrival = end − duration;
 * - an InVitro directory with `invocations.csv` (per-minute counts per
 *   function, columns after HashOwner,HashApp,HashFunction,Trigger),
 *   `durations.csv` (Average, Minimum, percentile_Average_* columns, ms) and
 *   optionally `memory.csv`: arrivals spread uniformly within each minute,
 *   runtimes drawn between the function's duration percentiles.
 * Price class and memory are not in the traces: they are drawn as in the
 * synthetic workload.
 */
export interface TraceDraws {
  rank(): number;
  memMb(): number;
}

function csv(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(','));
}

export function readAzureCsv(text: string, draws: TraceDraws): Invocation[] {
  const rows = csv(text);
  const header = rows.shift() ?? [];
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i === -1) throw new RangeError(`trace: missing column "${name}" (have: ${header.join(', ')})`);
    return i;
  };
  const [cf, ce, cd] = [col('func'), col('end_timestamp'), col('duration')];
  const fnIds = new Map<string, number>();
  const out: Invocation[] = [];
  for (const [line, r] of rows.entries()) {
    const end = Number(r[ce]) * 1000;
    const dur = Number(r[cd]) * 1000;
    if (!Number.isFinite(end) || !Number.isFinite(dur) || dur < 0) throw new RangeError(`trace line ${line + 2}: bad end_timestamp or duration`);
    const key = r[cf] ?? '';
    let fn = fnIds.get(key);
    if (fn === undefined) fnIds.set(key, (fn = fnIds.size));
    out.push({ id: 0, fn, arrival: Math.max(0, end - dur), runtime: Math.max(dur, 0.001), rank: draws.rank(), memMb: draws.memMb() });
  }
  return finish(out);
}

export function readInVitroDir(dir: string, draws: TraceDraws, rng: Rng): Invocation[] {
  const inv = csv(readFileSync(join(dir, 'invocations.csv'), 'utf8'));
  const dur = csv(readFileSync(join(dir, 'durations.csv'), 'utf8'));
  const invHead = inv.shift() ?? [];
  const durHead = dur.shift() ?? [];
  const fnCol = invHead.indexOf('HashFunction');
  const firstMinute = invHead.findIndex((h) => /^\d+$/.test(h));
  if (fnCol === -1 || firstMinute === -1) throw new RangeError('invocations.csv: expected HashFunction and per-minute count columns');
  const dFn = durHead.indexOf('HashFunction');
  const pcts = ['percentile_Average_0', 'percentile_Average_1', 'percentile_Average_25', 'percentile_Average_50', 'percentile_Average_75', 'percentile_Average_99', 'percentile_Average_100'].map((n) => durHead.indexOf(n));
  const avgCol = durHead.indexOf('Average');
  const byFn = new Map<string, number[]>();
  for (const r of dur) {
    const known = pcts.filter((i) => i !== -1).map((i) => Number(r[i]));
    byFn.set(r[dFn] ?? '', known.length > 0 ? known : [Number(r[avgCol])]);
  }
  const out: Invocation[] = [];
  for (const [fn, r] of inv.entries()) {
    const q = byFn.get(r[fnCol] ?? '') ?? [100];
    for (let m = firstMinute; m < r.length; m++) {
      const count = Number(r[m]);
      const minute = m - firstMinute;
      for (let k = 0; k < count; k++) {
        // runtime: uniform between two neighbouring percentile points
        const i = rng.int(Math.max(1, q.length - 1));
        const lo = q[i] as number;
        const hi = q[Math.min(i + 1, q.length - 1)] as number;
        out.push({ id: 0, fn, arrival: (minute + rng.next()) * 60_000, runtime: Math.max(0.001, lo + (hi - lo) * rng.next()), rank: draws.rank(), memMb: draws.memMb() });
      }
    }
  }
  return finish(out);
}

function finish(out: Invocation[]): Invocation[] {
  out.sort((a, b) => a.arrival - b.arrival || a.fn - b.fn);
  for (const [i, v] of out.entries()) v.id = i;
  return out;
}

export function readTrace(path: string, draws: TraceDraws, rng: Rng): Invocation[] {
  if (existsSync(join(path, 'invocations.csv'))) return readInVitroDir(path, draws, rng);
  return readAzureCsv(readFileSync(path, 'utf8'), draws);
}
