import { ClassQueue, type PushResult, type Queued } from '../policies/class-queue.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { FunctionRecord } from '../storage/store.js';
import { FunctionSandboxes } from './function-sandboxes.js';
import type { Call, SandboxState } from './types.js';

/**
 * Per-function state on the invocation path: sandboxes, the free-slot list and
 * the wait queue, plus the counters the autoscaler reads. All O(1) per call.
 */
export class FunctionRuntime {
  record: FunctionRecord;
  readonly key: string;
  /** All sandboxes of this function, any version and state, oldest first. */
  readonly sandboxes = new FunctionSandboxes();
  /** Ready sandboxes of the current version with at least one free slot. */
  private readonly free: SandboxState[] = [];
  /** Calls running on a sandbox. */
  inflight = 0;
  /** Calls waiting in the queue (not counting cancelled ones). */
  queued = 0;
  /** Last arrival or completion, monotonic ms. */
  lastActivity: number;
  /** Deleted: its sandboxes go as soon as their calls end, and none is adopted. */
  removed = false;
  /** No scale-down before this (monotonic ms): set when sandboxes are adopted after a restart. */
  holdScaleDownUntil = -Infinity;
  /** Time-weighted integral of (inflight + queued), for the autoscaler. */
  private concurrencyArea = 0;
  private areaSince: number;
  private lastTake: number;

  /** Its entry in the dispatcher's queue of functions waiting for capacity to place a sandbox. */
  pendingEntry: Queued<FunctionRuntime> | undefined;

  constructor(record: FunctionRecord, now: number, classes: PriceClassSet, maxQueued = 2 ** 30, key = `${record.namespace}/${record.name}`) {
    // Bounded: when full, a higher class sheds the newest call of the lowest class below it.
    this.queue = new ClassQueue<Call>(classes, maxQueued);
    this.classes = classes;
    this.record = record;
    this.key = key;
    this.lastActivity = now;
    this.areaSince = now;
    this.lastTake = now;
  }

  get version(): number {
    return this.record.version;
  }

  /**
   * Capacity that exists or is coming: ready/creating sandboxes of the current
   * version. A counter kept by the dispatcher (countsToward/recount), so reading
   * it on every call costs nothing.
   */
  scale = 0;

  /** Whether a sandbox counts toward `scale`. */
  countsToward(sb: SandboxState): boolean {
    return sb.record.version === this.version && (sb.status === 'ready' || sb.status === 'creating');
  }

  /** Count again (after a version change). */
  recount(): void {
    let n = 0;
    for (const sb of this.sandboxes) if (this.countsToward(sb)) n++;
    this.scale = n;
  }

  /** Must be called before inflight/queued change. */
  touch(now: number): void {
    this.concurrencyArea += (this.inflight + this.queued) * (now - this.areaSince);
    this.areaSince = now;
  }

  /** Average concurrency since the previous call, and reset. */
  takeAverageConcurrency(now: number): number {
    this.touch(now);
    const window = now - this.lastTake;
    const avg = window > 0 ? this.concurrencyArea / window : this.inflight + this.queued;
    this.concurrencyArea = 0;
    this.lastTake = now;
    return avg;
  }

  // ---- free-slot list (swap-remove, index kept on the sandbox) ----
  takeFreeSlot(): SandboxState | undefined {
    const sb = this.free[this.free.length - 1];
    if (sb === undefined) return undefined;
    sb.inflight++;
    if (sb.inflight >= sb.record.spec.concurrency) this.removeFree(sb);
    return sb;
  }

  addFree(sb: SandboxState): void {
    if (sb.freeIndex !== -1 || sb.status !== 'ready' || sb.record.version !== this.version || sb.inflight >= sb.record.spec.concurrency) return;
    sb.freeIndex = this.free.length;
    this.free.push(sb);
  }

  removeFree(sb: SandboxState): void {
    const i = sb.freeIndex;
    if (i === -1) return;
    const last = this.free.pop();
    if (last !== undefined && last !== sb) {
      this.free[i] = last;
      last.freeIndex = i;
    }
    sb.freeIndex = -1;
  }

  get freeCount(): number {
    return this.free.length;
  }

  // ---- wait queue: one FIFO per price class (the shard multi-queue policy) ----
  private readonly queue: ClassQueue<Call>;
  private readonly classes: PriceClassSet;

  /** Queue a call; when the queue is full a lower class's call may be shed for it (returned), or it is refused. */
  enqueue(call: Call, now: number): PushResult<Call> {
    const r = this.queue.push(call, call.req.priceClass, now);
    if (r.accepted) {
      call.queueEntry = r.entry;
      if (r.shed !== undefined) r.shed.item.queueEntry = undefined;
    }
    this.queued = this.queue.size;
    return r;
  }

  /** Highest class rank with calls waiting, -1 when none. */
  topQueuedRank(): number {
    for (let r = this.ranks - 1; r >= 0; r--) if (this.queue.sizeOfRank(r) > 0) return r;
    return -1;
  }

  private get ranks(): number {
    return this.classes.size;
  }

  /** Next call by price × time waited. */
  dequeue(now: number): Call | undefined {
    const e = this.queue.pop(now);
    if (e === undefined) return undefined;
    e.item.queueEntry = undefined;
    this.queued = this.queue.size;
    return e.item;
  }

  /** A queued call gave up (timeout, abort): it leaves the queue now. */
  removeQueued(call: Call): void {
    const e = call.queueEntry;
    if (e === undefined) return;
    call.queueEntry = undefined;
    this.queue.remove(e);
    this.queued = this.queue.size;
  }

  /** Calls waiting in the class of this rank. */
  queuedOfRank(rank: number): number {
    return this.queue.sizeOfRank(rank);
  }

  /** Drain every queued call (for failing them all). */
  drainQueue(): Call[] {
    const out = this.queue.drain().map((e) => {
      e.item.queueEntry = undefined;
      return e.item;
    });
    this.queued = 0;
    return out;
  }
}
