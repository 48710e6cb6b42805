import type { Call, SandboxState } from './types.js';

/**
 * The calls running on a sandbox, as a doubly linked list threaded through
 * the calls themselves (SandboxState.firstCall, Call.prevOnSandbox and
 * Call.nextOnSandbox). A Set per sandbox held about 150 B of heap even when
 * empty — which most sandboxes are, most of the time — against a control
 * plane budget of 300 B per sandbox; the links cost one field per sandbox
 * and allocate nothing per call. A call is only ever dispatched to one
 * sandbox (Call.sandbox), and leaves its list when it ends there.
 */

/** A call starts running on the sandbox. */
export function attachCall(sb: SandboxState, call: Call): void {
  const head = sb.firstCall;
  call.prevOnSandbox = undefined;
  call.nextOnSandbox = head;
  if (head !== undefined) head.prevOnSandbox = call;
  sb.firstCall = call;
}

/** Whether the call is running on the sandbox (dispatched there and not yet released). */
export function isRunningOn(sb: SandboxState, call: Call): boolean {
  return call.sandbox === sb && (sb.firstCall === call || call.prevOnSandbox !== undefined);
}

/** The call stops running on the sandbox. False if it was not running there. */
export function detachCall(sb: SandboxState, call: Call): boolean {
  if (!isRunningOn(sb, call)) return false;
  const prev = call.prevOnSandbox;
  const next = call.nextOnSandbox;
  if (prev === undefined) sb.firstCall = next;
  else prev.nextOnSandbox = next;
  if (next !== undefined) next.prevOnSandbox = prev;
  call.prevOnSandbox = undefined;
  call.nextOnSandbox = undefined;
  return true;
}

/** The calls running on the sandbox, oldest first, in an array of their own (safe to end them while iterating it). */
export function callsOn(sb: SandboxState): Call[] {
  const out: Call[] = [];
  for (let c = sb.firstCall; c !== undefined; c = c.nextOnSandbox) out.push(c);
  return out.reverse();
}
