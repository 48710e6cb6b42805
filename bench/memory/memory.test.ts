import { describe, expect, it } from 'vitest';
import { measureInChild } from './gc-child.js';
import { BUDGETS } from './measure.js';

/**
 * The memory budgets, measured on the real control-plane objects in a
 * child process with --expose-gc (the compiled bench: `npm test` builds
 * first). Smaller than `baton bench memory` so that it takes a few seconds,
 * with the same shape: each function's sandboxes spread over more workers
 * than it has sandboxes, so nearly every sandbox is its function's first on
 * its worker (what a large cluster sees, and the costliest case).
 */
describe('control-plane heap', () => {
  it(`stays within ${BUDGETS.sandboxBytes} B per sandbox and ${BUDGETS.functionBytes} B per function`, async () => {
    const f = await measureInChild({ workers: 200, functions: 100, sandboxesPerFunction: 100, idleFunctions: 500, rounds: 1 });
    const sandbox = f.perSandbox.max;
    const fn = f.perFunction.max;
    expect(sandbox, `measured ${sandbox} B per sandbox (rounds: ${f.perSandbox.rounds.join(', ')}), budget ${BUDGETS.sandboxBytes} B`).toBeLessThanOrEqual(BUDGETS.sandboxBytes);
    expect(fn, `measured ${fn} B per function (rounds: ${f.perFunction.rounds.join(', ')}), budget ${BUDGETS.functionBytes} B`).toBeLessThanOrEqual(BUDGETS.functionBytes);
    // a measurement that saw nothing would pass any budget
    expect(sandbox).toBeGreaterThan(50);
    expect(fn).toBeGreaterThan(200);
  });
});
