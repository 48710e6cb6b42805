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
