import { describe, expect, it } from 'vitest';
import { FunctionSandboxes } from './function-sandboxes.js';
import type { SandboxState } from './types.js';

function fnWith(list: FunctionSandboxes): (id: string) => SandboxState {
  const fn = { sandboxes: list };
  return (id) => ({ id, fn, prevOfFn: undefined, nextOfFn: undefined }) as unknown as SandboxState;
}

const ids = (l: FunctionSandboxes): string[] => [...l].map((sb) => sb.id);

describe("a function's sandboxes", () => {
  it('behave like the Set they replace: oldest first, each once, any one removable', () => {
    const l = new FunctionSandboxes();
    const sb = fnWith(l);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(sb) as [SandboxState, SandboxState, SandboxState, SandboxState];
    for (const x of [a, b, c, a]) l.add(x);
    expect(ids(l)).toEqual(['a', 'b', 'c']);
    expect(l.size).toBe(3);
    expect([l.has(a), l.has(b), l.has(c), l.has(d)]).toEqual([true, true, true, false]);
    expect(l.delete(d)).toBe(false);
    expect(l.delete(b)).toBe(true);
    expect(ids(l)).toEqual(['a', 'c']);
    expect(l.delete(a)).toBe(true);
    expect(l.delete(a)).toBe(false);
    l.add(d);
    expect(ids(l)).toEqual(['c', 'd']);
    expect(l.delete(d)).toBe(true);
    expect(l.delete(c)).toBe(true);
    expect(ids(l)).toEqual([]);
    expect(l.size).toBe(0);
    l.add(b);
    expect(ids(l)).toEqual(['b']);
  });

  it("never claim another function's sandbox", () => {
    const mine = new FunctionSandboxes();
    const theirs = new FunctionSandboxes();
    const a = fnWith(theirs)('a');
    const b = fnWith(theirs)('b');
    theirs.add(a);
    theirs.add(b);
    expect(mine.has(a)).toBe(false);
    expect(mine.has(b)).toBe(false);
    expect(mine.delete(b)).toBe(false);
    expect(ids(theirs)).toEqual(['a', 'b']);
  });

  it('let a loop remove the sandbox it is at', () => {
    const l = new FunctionSandboxes();
    const sb = fnWith(l);
    for (const id of ['a', 'b', 'c']) l.add(sb(id));
    const seen: string[] = [];
    for (const x of l) {
      seen.push(x.id);
      l.delete(x);
    }
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(l.size).toBe(0);
  });
});
