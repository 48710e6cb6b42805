import type { SandboxState } from './types.js';

/**
 * A function's sandboxes, of any version and state, oldest first: a doubly
 * linked list threaded through the sandboxes (SandboxState.prevOfFn and
 * nextOfFn) with the part of a Set's interface the control plane uses. A Set
 * cost about 26 B per sandbox in its hash table and 150 B per function even
 * when empty; the links cost 16 B per sandbox. A sandbox belongs to one
 * function, so it is in one list at most.
 *
 * A loop over the list may remove the sandbox it is at, not another one
 * (copy the list first: `[...fn.sandboxes]`).
 */
export class FunctionSandboxes implements Iterable<SandboxState> {
  private first: SandboxState | undefined = undefined;
  private last: SandboxState | undefined = undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(sb: SandboxState): boolean {
    return this.first === sb || (sb.prevOfFn !== undefined && sb.fn.sandboxes === this);
  }

  add(sb: SandboxState): void {
    if (this.has(sb)) return;
    sb.prevOfFn = this.last;
    sb.nextOfFn = undefined;
    if (this.last === undefined) this.first = sb;
    else this.last.nextOfFn = sb;
    this.last = sb;
    this.count++;
  }

  delete(sb: SandboxState): boolean {
    if (!this.has(sb)) return false;
    const prev = sb.prevOfFn;
    const next = sb.nextOfFn;
    if (prev === undefined) this.first = next;
    else prev.nextOfFn = next;
    if (next === undefined) this.last = prev;
    else next.prevOfFn = prev;
    sb.prevOfFn = undefined;
    sb.nextOfFn = undefined;
    this.count--;
    return true;
  }

  *[Symbol.iterator](): IterableIterator<SandboxState> {
    let sb = this.first;
    while (sb !== undefined) {
      // read before handing it out: the loop may remove it
      const next = sb.nextOfFn;
      yield sb;
      sb = next;
    }
  }
}
