import { describe, expect, it } from 'vitest';
import { CliError } from './cli-error.js';
import { duration, nonNegativeInt } from './parsers.js';

describe('option parsers', () => {
  it('nonNegativeInt takes whole numbers from 0 and names the flag otherwise', () => {
    const port = nonNegativeInt('--port');
    expect(port('0')).toBe(0);
    expect(port('8080')).toBe(8080);
    for (const bad of ['', ' ', '-1', '1.5', 'abc', '80a']) expect(() => port(bad)).toThrow(new CliError(`--port: expected a non-negative integer, got "${bad}"`));
  });

  it('duration takes 250ms, 30s, 1m30s and bare milliseconds, and names the flag otherwise', () => {
    const d = duration('--max-wait');
    expect(d('250ms')).toBe(250);
    expect(d('30s')).toBe(30_000);
    expect(d('1m30s')).toBe(90_000);
    expect(d('1500')).toBe(1500);
    expect(() => d('soon')).toThrow(CliError);
    expect(() => d('soon')).toThrow(/--max-wait/);
  });
});
