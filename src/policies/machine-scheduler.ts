import { Deque } from './deque.js';

export interface MachineTask {
  id: number;
  /** Price-class rank: higher runs first. */
  rank: number;
}

export type MachineDecision<T extends MachineTask> = { kind: 'start'; task: T; core: number } | { kind: 'preempt'; task: T; core: number };

/**
 * Preemptive priority scheduling over a machine's cores (seeds 000/001): each
 * running invocation holds a core; when all cores are busy, an arrival of a
 * higher class preempts the lowest class running (of those, the one started
 * last), which goes back to the front of its class's queue and resumes when a
 * core frees. Within a class it is FIFO and never preempts (SCHED_FIFO-like).
 */
export class PriorityMachineScheduler<T extends MachineTask> {
  private readonly onCore: (T | undefined)[];
  private readonly startedSeq: number[];
  private readonly waiting: Deque<T>[];
  private seq = 0;
  private waitingCount = 0;
  private readonly coreOf = new Map<number, number>();

  constructor(
    readonly cores: number,
    classes: number,
  ) {
    if (!Number.isInteger(cores) || cores < 1) throw new RangeError(`cores must be a positive integer, got ${cores}`);
    this.onCore = new Array<T | undefined>(cores).fill(undefined);
    this.startedSeq = new Array<number>(cores).fill(0);
    this.waiting = Array.from({ length: classes }, () => new Deque<T>());
  }

  get runningCount(): number {
    return this.coreOf.size;
  }

  get queuedCount(): number {
    return this.waitingCount;
  }

  /** Tasks on cores, by core (undefined = idle). */
  running(): readonly (T | undefined)[] {
    return this.onCore;
  }

  isRunning(id: number): boolean {
    return this.coreOf.has(id);
  }

  /**
   * A task wants a core. `resumed`: it held a core before and gave it up
   * without finishing (it waited for a call it made); if it has to wait, it
   * goes before later work of its class, as a preempted task does.
   */
  submit(task: T, resumed = false): MachineDecision<T>[] {
    const free = this.onCore.indexOf(undefined);
    if (free !== -1) return [this.start(task, free)];
    const victimCore = this.victimCore();
    const victim = this.onCore[victimCore] as T;
    if (victim.rank >= task.rank) {
      this.enqueue(task, resumed);
      return [];
    }
    this.coreOf.delete(victim.id);
    this.onCore[victimCore] = undefined;
    this.enqueue(victim, true);
    return [{ kind: 'preempt', task: victim, core: victimCore }, this.start(task, victimCore)];
  }

  /** The core of the lowest class running, latest started among equals (all cores busy). */
  private victimCore(): number {
    let victimCore = -1;
    for (let c = 0; c < this.cores; c++) {
      const t = this.onCore[c] as T;
      const v = victimCore === -1 ? undefined : (this.onCore[victimCore] as T);
      if (v === undefined || t.rank < v.rank || (t.rank === v.rank && (this.startedSeq[c] ?? 0) > (this.startedSeq[victimCore] ?? 0))) victimCore = c;
    }
    return victimCore;
  }

  /** Lowest class running on a core, or -1 when a core is idle. */
  lowestRunningRank(): number {
    if (this.coreOf.size < this.cores) return -1;
    return (this.onCore[this.victimCore()] as T).rank;
  }

  /**
   * A task's class changed (a sandbox's class is the highest class of the
   * calls it runs: a call of another class joined or left it). A waiting task
   * that rose may now preempt; a running task that fell may now be preempted
   * by a waiting one. Unknown ids are ignored.
   */
  setRank(task: T, rank: number): MachineDecision<T>[] {
    if (rank < 0 || rank >= this.waiting.length) throw new RangeError(`task rank ${rank} outside 0..${this.waiting.length - 1}`);
    if (task.rank === rank) return [];
    if (this.coreOf.has(task.id)) {
      task.rank = rank;
      const top = this.highestWaitingRank();
      if (top <= rank || top <= this.lowestRunningRank()) return [];
      // a waiting task now outranks the lowest running one: it takes that core
      const victimCore = this.victimCore();
      const victim = this.onCore[victimCore] as T;
      const next = this.dequeue() as T;
      this.coreOf.delete(victim.id);
      this.onCore[victimCore] = undefined;
      this.enqueue(victim, true);
      return [{ kind: 'preempt', task: victim, core: victimCore }, this.start(next, victimCore)];
    }
    const q = this.waiting[task.rank];
    if (q === undefined || !this.removeFrom(q, task.id)) return [];
    this.waitingCount--;
    task.rank = rank;
    return this.submit(task);
  }

  private highestWaitingRank(): number {
    for (let r = this.waiting.length - 1; r >= 0; r--) if ((this.waiting[r]?.length ?? 0) > 0) return r;
    return -1;
  }

  /** A task finished (or was killed while running): its core takes the next waiting task. */
  complete(id: number): MachineDecision<T>[] {
    const core = this.coreOf.get(id);
    if (core === undefined) return [];
    this.coreOf.delete(id);
    this.onCore[core] = undefined;
    const next = this.dequeue();
    return next === undefined ? [] : [this.start(next, core)];
  }

  /** Drop a waiting task (killed). Returns whether it was found. */
  removeWaiting(id: number): boolean {
    for (const q of this.waiting) {
      if (this.removeFrom(q, id)) {
        this.waitingCount--;
        return true;
      }
    }
    return false;
  }

  /** Take one task out of a class queue, keeping the order of the rest. */
  private removeFrom(q: Deque<T>, id: number): boolean {
    const keep: T[] = [];
    let found = false;
    for (let t = q.popFront(); t !== undefined; t = q.popFront()) {
      if (t.id === id && !found) found = true;
      else keep.push(t);
    }
    for (const t of keep) q.pushBack(t);
    return found;
  }

  /** Waiting tasks, highest class first, in the order they would run. */
  *waitingTasks(): Generator<T> {
    for (let r = this.waiting.length - 1; r >= 0; r--) {
      const q = this.waiting[r] as Deque<T>;
      const n = q.length;
      for (let i = 0; i < n; i++) {
        const t = q.popFront() as T;
        q.pushBack(t);
        yield t;
      }
    }
  }

  private start(task: T, core: number): MachineDecision<T> {
    this.onCore[core] = task;
    this.startedSeq[core] = ++this.seq;
    this.coreOf.set(task.id, core);
    return { kind: 'start', task, core };
  }

  private enqueue(task: T, front: boolean): void {
    const q = this.waiting[task.rank];
    if (q === undefined) throw new RangeError(`task rank ${task.rank} outside 0..${this.waiting.length - 1}`);
    if (front) q.pushFront(task);
    else q.pushBack(task);
    this.waitingCount++;
  }

  private dequeue(): T | undefined {
    for (let r = this.waiting.length - 1; r >= 0; r--) {
      const t = this.waiting[r]?.popFront();
      if (t !== undefined) {
        this.waitingCount--;
        return t;
      }
    }
    return undefined;
  }
}
