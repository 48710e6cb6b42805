import { parseDuration } from '../common/duration.js';
import { CliError } from './cli-error.js';

/** Option parsers for the command table: each names its flag when it refuses a value. */

export function nonNegativeInt(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new CliError(`${flag}: expected a non-negative integer, got "${v}"`);
    return n;
  };
}

export function duration(flag: string): (v: string) => number {
  return (v) => {
    try {
      return parseDuration(v, flag);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  };
}

export function nonNegativeNumber(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError(`${flag}: expected a non-negative number, got "${v}"`);
    return n;
  };
}

/** `batch=0.5,standard=1,…` → price class definitions (PriceClassSet checks them further at start). */
export function priceClassList(text: string): { name: string; price: number }[] {
  return text.split(',').map((part) => {
    const m = /^\s*([a-z][a-z0-9-]*)\s*=\s*([0-9.]+)\s*$/.exec(part);
    if (m === null) throw new CliError(`--price-classes: expected name=price[,name=price…], got "${part}"`);
    return { name: m[1] as string, price: Number(m[2]) };
  });
}
