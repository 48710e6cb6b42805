import { describe, expect, it } from 'vitest';
import { attachCall, callsOn, detachCall, isRunningOn } from './sandbox-calls.js';
import type { Call, SandboxState } from './types.js';

const sandbox = (): SandboxState => ({ firstCall: undefined }) as SandboxState;
const call = (id: string, sb: SandboxState | undefined): Call => ({ id, sandbox: sb, prevOnSandbox: undefined, nextOnSandbox: undefined }) as Call;

describe('the calls running on a sandbox', () => {
  it('lists them oldest first and lets any of them leave', () => {
    const sb = sandbox();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => call(id, sb)) as [Call, Call, Call];
    for (const x of [a, b, c]) attachCall(sb, x);
    expect(callsOn(sb).map((x) => x.id)).toEqual(['a', 'b', 'c']);
    expect(detachCall(sb, b)).toBe(true);
    expect(callsOn(sb).map((x) => x.id)).toEqual(['a', 'c']);
    expect(detachCall(sb, c)).toBe(true);
    expect(callsOn(sb).map((x) => x.id)).toEqual(['a']);
    expect(detachCall(sb, a)).toBe(true);
    expect(callsOn(sb)).toEqual([]);
    expect(sb.firstCall).toBeUndefined();
  });

  it('knows which calls run where: a released call, or one on another sandbox, is not running here', () => {
    const sb = sandbox();
    const other = sandbox();
    const a = call('a', sb);
    const b = call('b', other);
    expect(isRunningOn(sb, a)).toBe(false);
    attachCall(sb, a);
    attachCall(other, b);
    expect(isRunningOn(sb, a)).toBe(true);
    expect(isRunningOn(sb, b)).toBe(false);
    expect(detachCall(sb, b)).toBe(false);
    expect(callsOn(other).map((x) => x.id)).toEqual(['b']);
    expect(detachCall(sb, a)).toBe(true);
    expect(isRunningOn(sb, a)).toBe(false);
    // leaving twice changes nothing
    expect(detachCall(sb, a)).toBe(false);
    expect(callsOn(sb)).toEqual([]);
  });
});
