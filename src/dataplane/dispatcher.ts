import type { Clock } from '../common/clock.js';
import { BatonError, type ErrorCode, type WireError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import type { InvokeFrame, ResultFrame, SandboxReport, SandboxSpec } from '../protocol/messages.js';
import { ClassQueue } from '../policies/class-queue.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { FunctionRecord } from '../storage/store.js';
import { Deadlines } from './deadlines.js';
import { FunctionRuntime } from './function-runtime.js';
import { attachCall, callsOn, detachCall, isRunningOn } from './sandbox-calls.js';
import type { Call, CallTiming, CallUsage, InvocationRequest, InvocationResult, NodeState, RemoteChild, SandboxState } from './types.js';

/** Where a new sandbox goes, and the worker core claimed for the call it is made for (-1: none claimed). */
export interface Placed {
  node: NodeState;
  core: number;
}

/**
 * Worker cores claimed in the cluster's shared capacity (src/scheduler): a
 * sandbox running calls holds one core of its worker while there is one to
 * claim, and the classes running on each worker's cores are counted where
 * every scheduler core's placement sees them. Absent: no shared capacity
 * (one scheduler, unit tests).
 */
export interface CoreClaims {
  /** Claim an idle core of this worker; -1 when it has none idle. */
  claimOn(node: NodeState): number;
  /** Give back a core claimed with claimOn or by placement. */
  release(node: NodeState, core: number): void;
  /** A sandbox on this worker runs calls at rank `to` now, `from` before (-1: none). */
  busyChanged(node: NodeState, from: number, to: number): void;
}

export interface DispatcherHooks {
  /**
   * Pick a node for a new sandbox of this function for work of class `rank`
   * (`forCall`: a call waits for it, so claim a core for that call): a node,
   * 'busy' when workers exist but none has an idle core or a lower class to
   * preempt (or room in memory), undefined when no worker is ready.
   */
  place(fn: FunctionRuntime, rank: number, forCall: boolean): Placed | 'busy' | undefined;
  /** True while the control plane should wait for workers instead of failing calls at once. */
  awaitingWorkers(): boolean;
  onSandboxCreated?(fn: FunctionRuntime): void;
  /** A worker confirmed a sandbox ready (a creation completed). */
  onSandboxReady?(fn: FunctionRuntime): void;
  /** A sandbox the worker was asked to create is gone (deleted, failed or lost); once per sandbox. */
  onSandboxGone?(sb: SandboxState): void;
  onCallDone?(call: Call, result: InvocationResult): void;
}

export interface DispatcherOptions {
  clock: Clock;
  /** Configured price classes: each function's queue has one FIFO per class. */
  classes: PriceClassSet;
  log: Logger;
  maxQueuePerFunction: number;
  /** How long a call may wait for a sandbox (queued or cold-starting), apart from its execution timeout. */
  maxWaitMs?: number;
  /** Past a dispatched call's timeout, how long to wait for the worker's own timeout answer before giving up on it. */
  execGraceMs?: number;
  hooks: DispatcherHooks;
  claims?: CoreClaims;
}

const DEFAULT_MAX_WAIT_MS = 30_000;
const DEFAULT_EXEC_GRACE_MS = 2_000;

const ENCODER = new TextEncoder();
const EMPTY = new Uint8Array(0);

function errorResult(code: ErrorCode, message: string, retryAfter?: number): Omit<InvocationResult, 'timing' | 'callId'> {
  const err = new BatonError(code, message);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  return { status: err.status, headers, body: ENCODER.encode(JSON.stringify({ error: err.toWire() })), error: err.toWire() };
}

/**
 * The data plane: routes each call to a sandbox slot (warm path), or queues it
 * with late binding (whichever slot frees first takes the head, chosen among
 * the price classes' queues by price × time waited), starts a
 * sandbox synchronously when a function has none, and reacts to what workers
 * report. Single-threaded: enqueue and slot checks happen in one turn of the
 * event loop, so a new sandbox can never miss a waiter.
 */
export class Dispatcher {
  readonly functions = new Map<string, FunctionRuntime>();
  /**
   * Workers with at least one sandbox. A sandbox is indexed by id on its
   * worker only (NodeState.sandboxes): every frame about a sandbox comes from
   * its worker, and a second, global index cost about 26 B per sandbox.
   */
  private readonly hosts = new Set<NodeState>();
  private count = 0;
  /**
   * Of an adopted sandbox's `inflight`, the calls its worker reported running
   * when it was adopted after a control-plane restart: not ours to answer,
   * but they hold slots until the worker reports them done. Only adopted
   * sandboxes with such calls left are here (a field on every sandbox for
   * this rare case cost 8 B each).
   */
  private readonly phantoms = new Map<SandboxState, number>();
  private readonly calls = new Map<string, Call>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly maxWaitMs: number;
  private readonly execGraceMs: number;
  private readonly rankOf = new Map<string, number>();
  /**
   * Functions whose calls wait for a sandbox that no worker can take now (no
   * idle core, no lower class to preempt): the shard multi-queue across
   * functions — when capacity frees, the next placed is chosen by price ×
   * time waited (seeds 000/001).
   */
  private readonly pending: ClassQueue<FunctionRuntime>;
  /** Functions with calls waiting and no worker to place a sandbox on (during the start-up grace). */
  private readonly starving = new Set<FunctionRuntime>();
  /** Every call's wait or execution deadline, on one timer. */
  private readonly deadlines = new Deadlines();

  constructor(private readonly opts: DispatcherOptions) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    this.execGraceMs = opts.execGraceMs ?? DEFAULT_EXEC_GRACE_MS;
    for (const c of opts.classes.byRank) this.rankOf.set(c.name, c.rank);
    this.pending = new ClassQueue<FunctionRuntime>(opts.classes, 2 ** 30);
  }

  /** Calls of functions waiting for capacity to place a sandbox (across functions). */
  get pendingPlacements(): number {
    return this.pending.size;
  }

  /** Sandboxes of every function and state. */
  get sandboxCount(): number {
    return this.count;
  }

  /** Every sandbox, worker by worker (do not create or remove sandboxes while iterating). */
  *allSandboxes(): IterableIterator<SandboxState> {
    for (const node of this.hosts) yield* node.sandboxes.values();
  }

  /** The sandbox of this id on this worker, if the control plane tracks it there. */
  sandboxOn(node: NodeState, id: string): SandboxState | undefined {
    return node.sandboxes.get(id);
  }

  /** Whether the sandbox is still tracked (not removed). */
  private tracked(sb: SandboxState): boolean {
    return sb.node.sandboxes.get(sb.id) === sb;
  }

  /** Whether some worker has a sandbox of this id. */
  private idTaken(id: string): boolean {
    for (const node of this.hosts) if (node.sandboxes.has(id)) return true;
    return false;
  }

  // ------------------------------------------------------------------ calls

  /** A call arrives. `id` names it (an async call's attempts share its id); default: a new one. */
  invoke(fn: FunctionRuntime, req: InvocationRequest, reply: (r: InvocationResult) => void, id?: string): Call {
    const now = this.clock.now();
    req.rank = this.rankOf.get(req.priceClass) ?? 0;
    const call: Call = {
      id: id ?? newId('call'),
      fn: fn.record,
      req,
      arrivedAt: req.arrivedAt ?? now,
      enqueuedAt: -1,
      dispatchedAt: -1,
      coldMs: 0,
      sandbox: undefined,
      queueEntry: undefined,
      prevOnSandbox: undefined,
      nextOnSandbox: undefined,
      done: false,
      timer: undefined,
      reply,
    };
    fn.touch(now);
    fn.lastActivity = now;
    const sb = fn.takeFreeSlot();
    if (sb !== undefined) {
      this.dispatch(fn, call, sb, now);
      return call;
    }
    call.enqueuedAt = now;
    const pushed = fn.enqueue(call, now);
    if (!pushed.accepted) {
      // full of calls of this class or higher: overload sheds the lowest classes first, never a higher one for it
      this.finish(call, errorResult('overloaded', `function ${fn.key} has ${fn.queued} calls queued (the limit), none of a lower class than ${req.priceClass}; retry later`, 1));
      return call;
    }
    if (pushed.shed !== undefined) {
      const victim = pushed.shed.item;
      victim.req.body = EMPTY;
      this.finish(victim, errorResult('overloaded', `shed from the full queue of ${fn.key} to make room for a ${req.priceClass} call; retry later`, 1));
    }
    call.timer = this.deadlines.add(this.maxWaitMs, () => this.waitExpired(call));
    if (fn.scale === 0) this.coldStart(fn);
    return call;
  }

  /**
   * A chain call's parent (on another scheduler core) ended: if the call has
   * not started it fails with chain_broken, as a local child would.
   */
  abandon(call: Call, parentId: string): void {
    if (!call.done && call.sandbox === undefined) this.finish(call, errorResult('chain_broken', `call ${parentId}, which made this call, ended before it started`));
  }

  /** The caller went away: drop the call without answering; a queued call leaves the queue now. */
  cancel(call: Call): void {
    if (call.done) return;
    call.done = true;
    this.deadlines.cancel(call.timer);
    call.timer = undefined;
    if (call.sandbox === undefined) this.unqueue(call);
    this.endChildren(call);
  }

  // ------------------------------------------------------------ call chains

  /**
   * A call that was dispatched to this node and has not ended: the only
   * calls a worker may make chain calls from. Another node's call, or one
   * that ended (answered, timed out, its client gone), is not found.
   */
  runningCallOn(node: NodeState, callId: string): Call | undefined {
    const call = this.calls.get(callId);
    return call !== undefined && !call.done && call.sandbox?.node === node ? call : undefined;
  }

  /**
   * A chain call made from inside `parent` (`ctx.invoke`): an ordinary call
   * (the caller has settled its function and class, and checked its depth)
   * that records its parent and depth. While it is out the parent waits
   * rather than runs: its sandbox stops counting as busy on its worker's
   * cores, so that the child can be placed there — on a worker whose every
   * core holds a waiting parent the child would otherwise wait for a core its
   * own parent holds. The worker's machine scheduler does the same on the
   * machine (MachineController.block).
   */
  invokeChild(parent: Call, fn: FunctionRuntime, req: InvocationRequest, reply: (r: InvocationResult) => void): Call {
    req.parentId = parent.id;
    req.depth = (parent.req.depth ?? 0) + 1;
    const children = (parent.children ??= new Set());
    this.setAwaiting(parent, 1);
    // invoke may answer at once (queue full), before `child` is assigned
    let inInvoke = true;
    let answeredAtOnce = false;
    const child = this.invoke(fn, req, (r) => {
      if (inInvoke) answeredAtOnce = true;
      else children.delete(child);
      this.setAwaiting(parent, -1);
      reply(r);
    });
    inInvoke = false;
    if (!answeredAtOnce) children.add(child);
    return child;
  }

  /**
   * A chain call made from inside `parent` whose callee another scheduler
   * core owns: that core runs it; here the parent waits (holds no core) until
   * `done` is called, and if the parent ends first the child is abandoned.
   * Returns `done`, to call once when the child's answer arrives.
   */
  remoteChild(parent: Call, child: RemoteChild): () => void {
    const children = (parent.children ??= new Set());
    children.add(child);
    this.setAwaiting(parent, 1);
    let settled = false;
    return () => {
      if (settled) return;
      settled = true;
      children.delete(child);
      this.setAwaiting(parent, -1);
    };
  }

  private setAwaiting(parent: Call, delta: number): void {
    parent.awaiting = (parent.awaiting ?? 0) + delta;
    const sb = parent.sandbox;
    if (sb === undefined || !isRunningOn(sb, parent)) return;
    const before = sb.rank;
    this.setSandboxRank(sb, this.sandboxRank(sb));
    // a core freed in our view: work waiting for capacity may be placed now
    if (sb.rank < before && this.pending.size > 0) this.placePending();
  }

  /** A call ended: chain calls it made that still wait for a sandbox are not worth running any more. */
  private endChildren(call: Call): void {
    const children = call.children;
    if (children === undefined) return;
    for (const child of [...children]) {
      if ('abandon' in child) child.abandon();
      else if (child.sandbox === undefined) this.finish(child, errorResult('chain_broken', `call ${call.id}, which made this call, ended before it started`));
    }
  }

  private unqueue(call: Call): void {
    if (call.queueEntry === undefined) return;
    const fn = this.functions.get(`${call.fn.namespace}/${call.fn.name}`);
    if (fn !== undefined) {
      fn.touch(this.clock.now());
      fn.removeQueued(call);
    }
    call.queueEntry = undefined;
    // the body can be large: let it go now rather than when the caller's objects die
    call.req.body = EMPTY;
  }

  /** A queued call found no sandbox within the wait bound (its execution timeout has not started). */
  private waitExpired(call: Call): void {
    call.timer = undefined;
    if (call.done || call.sandbox !== undefined) return;
    this.unqueue(call);
    const fn = this.functions.get(`${call.fn.namespace}/${call.fn.name}`);
    const waited = Math.round(this.clock.now() - call.arrivedAt);
    let why = '';
    if (fn !== undefined) {
      const starting = [...fn.sandboxes].filter((s) => s.status === 'creating' && s.record.version === fn.version);
      if (starting.length > 0) {
        // a sandbox being created has taken no call: lastUsed is when it was asked for
        const oldest = starting.reduce((a, b) => (a.lastUsed < b.lastUsed ? a : b));
        why = `; its sandbox on worker ${oldest.node.name} has been starting for ${Math.round(this.clock.now() - oldest.lastUsed)} ms${fn.record.spec.runtime === 'http' ? ' (an http function must listen on $PORT)' : ''}`;
      } else if (fn.scale > 0) why = `; all ${fn.scale} sandboxes were busy`;
      else why = '; no worker could take a new sandbox';
    }
    this.finish(call, errorResult('timeout', `waited ${waited} ms for a sandbox of ${call.fn.namespace}/${call.fn.name} (the control plane's wait limit is ${this.maxWaitMs} ms)${why}`));
  }

  /**
   * A dispatched call's worker has not answered by its timeout (plus a grace).
   * The worker enforces the timeout itself, counting only execution: a call
   * frozen by higher classes, or held for a core, may rightly run later. So
   * while its worker is connected and heartbeating, wait another period; a
   * worker that dies or falls silent fails its calls when it is declared gone.
   */
  private execExpired(call: Call): void {
    call.timer = undefined;
    if (call.done) return;
    const node = call.sandbox?.node;
    if (node !== undefined && (node.status === 'ready' || node.status === 'draining') && this.clock.now() - node.lastHeartbeat < 3 * (call.fn.spec.timeoutMs + this.execGraceMs)) {
      call.timer = this.deadlines.add(call.fn.spec.timeoutMs + this.execGraceMs, () => this.execExpired(call));
      return;
    }
    // The slot stays taken until the worker answers or the sandbox goes.
    this.finish(call, errorResult('timeout', `function ${call.fn.namespace}/${call.fn.name} did not answer within its timeout of ${call.fn.spec.timeoutMs} ms`));
  }

  private dispatch(fn: FunctionRuntime, call: Call, sb: SandboxState, now: number): void {
    call.sandbox = sb;
    call.dispatchedAt = now;
    attachCall(sb, call);
    sb.lastUsed = now;
    fn.inflight++;
    sb.node.inflight++;
    const rank = call.req.rank ?? 0;
    if (rank > sb.rank) this.setSandboxRank(sb, rank);
    this.calls.set(call.id, call);
    this.deadlines.cancel(call.timer);
    // The function's timeout bounds execution only, from dispatch; the worker enforces it.
    call.timer = this.deadlines.add(call.fn.spec.timeoutMs + this.execGraceMs, () => this.execExpired(call));
    const frame: InvokeFrame = {
      t: 'invoke',
      callId: call.id,
      sandboxId: sb.id,
      method: call.req.method,
      path: call.req.path,
      headers: call.req.headers,
      body: call.req.body,
      timeoutMs: call.fn.spec.timeoutMs,
      priceClass: call.req.priceClass,
    };
    if (call.req.parentId !== undefined) frame.parentId = call.req.parentId;
    const sent = sb.node.send(frame);
    // scheduling latency ends when the frame is written to the worker
    call.dispatchedAt = this.clock.now();
    if (!sent) this.sandboxLost(sb, `worker ${sb.node.name} is not connected`);
  }

  /** A worker answered a call. */
  result(from: NodeState, frame: ResultFrame): void {
    const call = this.calls.get(frame.callId);
    if (call === undefined || call.sandbox?.node !== from) {
      this.adoptedCallDone(from, frame.sandboxId);
      return;
    }
    this.calls.delete(frame.callId);
    const sb = call.sandbox;
    // the worker killed the sandbox for memory: its sandboxGone may come after this, but no call may be given to it meanwhile
    const killed = frame.error?.code === 'memory_pressure' && sb.status !== 'deleting';
    if (killed) this.setStatus(sb, 'draining');
    this.releaseSlot(sb, call);
    const res: Omit<InvocationResult, 'timing' | 'callId'> = { status: frame.status, headers: frame.headers, body: frame.body };
    if (frame.error !== undefined) res.error = frame.error as WireError;
    if (frame.cpuMs !== undefined) {
      const usage: CallUsage = { cpuMs: frame.cpuMs, mbMs: frame.mbMs ?? 0, preemptMs: frame.preemptMs ?? 0, waitMs: frame.waitMs ?? 0 };
      res.usage = usage;
    }
    this.finish(call, res, frame.execMs);
    this.afterRelease(sb);
    const fn = sb.fn;
    if (killed && !fn.removed && fn.queued > 0 && fn.scale === 0) this.coldStart(fn);
  }

  /** A call we do not know finished: one that was running when its sandbox was adopted after a restart. */
  private adoptedCallDone(from: NodeState, sandboxId: string): void {
    const sb = from.sandboxes.get(sandboxId);
    const phantom = sb === undefined ? 0 : (this.phantoms.get(sb) ?? 0);
    if (sb === undefined || phantom === 0) {
      this.log.debug({ sandboxId }, 'result for an unknown call (answered already or from before a restart)');
      return;
    }
    if (phantom === 1) this.phantoms.delete(sb);
    else this.phantoms.set(sb, phantom - 1);
    sb.inflight--;
    sb.node.inflight--;
    this.setSandboxRank(sb, this.sandboxRank(sb));
    sb.fn.addFree(sb);
    this.afterRelease(sb);
  }

  private releaseSlot(sb: SandboxState, call: Call): void {
    detachCall(sb, call);
    sb.inflight--;
    sb.node.inflight--;
    if (sb.inflight === 0) this.setSandboxRank(sb, -1);
    else if ((call.req.rank ?? 0) === sb.rank && sb.record.spec.concurrency > 1) this.setSandboxRank(sb, this.sandboxRank(sb));
    const fn = sb.fn;
    const now = this.clock.now();
    fn.touch(now);
    fn.inflight--;
    fn.lastActivity = now;
    fn.addFree(sb);
  }

  private afterRelease(sb: SandboxState): void {
    if (sb.status === 'draining' && sb.inflight === 0) this.deleteSandbox(sb);
    else if (sb.status === 'ready') this.pump(sb.fn, 0);
    if (this.pending.size > 0 && sb.rank < 0) this.placePending();
  }

  // ------------------------------------------------ classes on the cores

  /** The rank of a sandbox's highest call in flight (adopted calls count at its function's class). */
  private sandboxRank(sb: SandboxState): number {
    if (sb.inflight === 0) return -1;
    let r = this.phantoms.size > 0 && this.phantoms.has(sb) ? (this.rankOf.get(sb.fn.record.spec.priceClass) ?? 0) : -1;
    // a call waiting for its chain calls holds no core (see invokeChild)
    for (let c = sb.firstCall; c !== undefined; c = c.nextOnSandbox) if ((c.awaiting ?? 0) === 0) r = Math.max(r, c.req.rank ?? 0);
    return r;
  }

  private setSandboxRank(sb: SandboxState, rank: number): void {
    if (sb.rank === rank) return;
    const claims = this.opts.claims;
    if (claims !== undefined) {
      claims.busyChanged(sb.node, sb.rank, rank);
      // running: hold one of the worker's cores if one is idle (placement may have claimed it already); idle: give it back
      if (rank >= 0 && sb.core === -1) sb.core = claims.claimOn(sb.node);
      else if (rank < 0) this.releaseCore(sb);
    }
    const n = sb.node;
    while (n.busyByRank.length < this.opts.classes.size) n.busyByRank.push(0);
    if (sb.rank >= 0) {
      n.busyByRank[sb.rank] = (n.busyByRank[sb.rank] ?? 1) - 1;
      n.busy--;
    }
    if (rank >= 0) {
      n.busyByRank[rank] = (n.busyByRank[rank] ?? 0) + 1;
      n.busy++;
    }
    sb.rank = rank;
  }

  private releaseCore(sb: SandboxState): void {
    if (sb.core === -1) return;
    const core = sb.core;
    sb.core = -1;
    this.opts.claims?.release(sb.node, core);
  }

  /** Capacity may have freed somewhere: place sandboxes for waiting functions, best price × wait first. */
  placePending(): void {
    const skipped: NonNullable<FunctionRuntime['pendingEntry']>[] = [];
    for (let tries = 0; tries < 8 && this.pending.size > 0; tries++) {
      const now = this.clock.now();
      const e = this.pending.pop(now);
      if (e === undefined) break;
      const fn = e.item;
      fn.pendingEntry = undefined;
      if (fn.removed || fn.queued === 0 || fn.scale > 0) continue;
      const placed = this.tryCreate(fn, fn.topQueuedRank(), true);
      if (placed === 'busy') {
        skipped.push(e);
        fn.pendingEntry = e;
      }
    }
    // back in front, in their order: they keep their place
    for (let i = skipped.length - 1; i >= 0; i--) this.pending.pushFront(skipped[i] as NonNullable<FunctionRuntime['pendingEntry']>);
  }

  private awaitPlacement(fn: FunctionRuntime, rank: number): void {
    if (fn.pendingEntry !== undefined) return;
    const cls = this.opts.classes.byRank[Math.max(0, rank)]?.name ?? this.opts.classes.lowest.name;
    const r = this.pending.push(fn, cls, this.clock.now());
    if (r.accepted) fn.pendingEntry = r.entry;
  }

  /** Give free slots to queued calls, chosen by price × time waited. */
  private pump(fn: FunctionRuntime, coldMs: number): void {
    while (fn.queued > 0 && fn.freeCount > 0) {
      const now = this.clock.now();
      const call = fn.dequeue(now);
      if (call === undefined) return;
      const sb = fn.takeFreeSlot();
      if (sb === undefined) return;
      fn.touch(now);
      call.coldMs = coldMs > 0 ? Math.min(coldMs, now - call.arrivedAt) : 0;
      this.dispatch(fn, call, sb, now);
    }
  }

  private finish(call: Call, res: Omit<InvocationResult, 'timing' | 'callId'>, execMs = 0): void {
    if (call.done) return;
    call.done = true;
    this.deadlines.cancel(call.timer);
    call.timer = undefined;
    const now = this.clock.now();
    const waited = (call.dispatchedAt >= 0 ? call.dispatchedAt : now) - call.arrivedAt;
    let queueMs = 0;
    let schedMs = waited - call.coldMs;
    if (call.coldMs === 0 && call.enqueuedAt >= 0) {
      queueMs = waited;
      schedMs = 0;
    }
    const timing: CallTiming = { queueMs, schedMs: Math.max(0, schedMs), coldMs: call.coldMs, execMs, totalMs: now - call.arrivedAt };
    const sb = call.sandbox;
    // every field in one literal: a spread with keys added after it cost microseconds per call on Node 20
    const result: InvocationResult = {
      callId: call.id,
      status: res.status,
      headers: res.headers,
      body: res.body,
      error: res.error,
      timing,
      usage: res.usage,
      cost: undefined,
      sandboxId: sb?.id,
      nodeId: sb?.node.id,
    };
    if (call.queueEntry !== undefined) this.unqueue(call);
    this.opts.hooks.onCallDone?.(call, result);
    call.reply(result);
    this.endChildren(call);
  }

  private failQueued(fn: FunctionRuntime, code: ErrorCode, message: string, retryAfter?: number): void {
    fn.touch(this.clock.now());
    for (const call of fn.drainQueue()) this.finish(call, errorResult(code, message, retryAfter));
  }

  // -------------------------------------------------------------- sandboxes

  /**
   * Start a sandbox now because calls wait and none exists. When workers exist
   * but none can run this class now, the function waits for capacity (placed
   * across functions by price × wait). Returns false if the calls were failed.
   */
  private coldStart(fn: FunctionRuntime): boolean {
    const rank = Math.max(0, fn.topQueuedRank());
    const r = this.tryCreate(fn, rank, true);
    if (r === 'created') return true;
    if (r === 'busy') {
      this.awaitPlacement(fn, rank);
      return true;
    }
    if (this.opts.hooks.awaitingWorkers()) {
      // retried when a worker joins
      this.starving.add(fn);
      return true;
    }
    this.failQueued(fn, 'no_capacity', 'no worker is ready to run a sandbox; check `baton nodes`', 5);
    return false;
  }

  /** A new sandbox for work of the function's own class (autoscaler). */
  createSandbox(fn: FunctionRuntime): boolean {
    return this.tryCreate(fn, this.rankOf.get(fn.record.spec.priceClass) ?? 0, false) === 'created';
  }

  private tryCreate(fn: FunctionRuntime, rank: number, forCall: boolean): 'created' | 'busy' | 'none' {
    if (fn.removed) return 'none';
    const placed = this.opts.hooks.place(fn, rank, forCall);
    if (placed === undefined) return 'none';
    if (placed === 'busy') return 'busy';
    const node = placed.node;
    const sb = this.register(fn, newId('sb'), node, 'creating');
    // the core claimed for the waiting call is held while the sandbox starts, then while it runs the call
    sb.core = placed.core;
    if (fn.record.bundleHash !== '') node.bundles.add(fn.record.bundleHash);
    this.opts.hooks.onSandboxCreated?.(fn);
    if (!node.send({ t: 'create', sandboxId: sb.id, spec: sandboxSpec(fn.record) })) {
      this.removeSandbox(sb, undefined, false);
      return 'none';
    }
    return 'created';
  }

  /** Create the record of a sandbox of the function's current version and index it everywhere. */
  private register(fn: FunctionRuntime, id: string, node: NodeState, status: 'creating' | 'ready'): SandboxState {
    const now = this.clock.now();
    const sb: SandboxState = {
      id,
      fn,
      prevOfFn: undefined,
      nextOfFn: undefined,
      record: fn.record,
      node,
      status,
      inflight: 0,
      firstCall: undefined,
      rank: -1,
      core: -1,
      freeIndex: -1,
      createdAt: this.clock.wallNow(),
      pid: undefined,
      lastUsed: now,
    };
    fn.sandboxes.add(sb);
    if (fn.countsToward(sb)) fn.scale++;
    node.sandboxes.set(id, sb);
    this.hosts.add(node);
    this.count++;
    return sb;
  }

  /** Every status change goes through here, so the function's scale counter stays exact. */
  private setStatus(sb: SandboxState, status: SandboxState['status']): void {
    const fn = sb.fn;
    const before = fn.sandboxes.has(sb) && fn.countsToward(sb);
    sb.status = status;
    const after = fn.sandboxes.has(sb) && fn.countsToward(sb);
    if (before !== after) fn.scale += after ? 1 : -1;
  }

  sandboxReady(from: NodeState, id: string, createMs: number, pid?: number): void {
    const sb = from.sandboxes.get(id);
    if (sb === undefined) {
      // Created for a connection that is gone (its records were dropped) and finished
      // after the worker's hello: nobody tracks it, so it must not live on.
      this.log.info({ sandboxId: id, node: from.name }, 'sandbox ready that is not ours (from before a reconnect): deleting it');
      from.send({ t: 'delete', sandboxId: id });
      return;
    }
    if (sb.status !== 'creating') return;
    const fn = sb.fn;
    this.setStatus(sb, 'ready');
    this.opts.hooks.onSandboxReady?.(fn);
    if (pid !== undefined) sb.pid = pid;
    if (fn.removed || sb.record.version !== fn.version || from.status !== 'ready') {
      this.deleteSandbox(sb);
      return;
    }
    fn.addFree(sb);
    this.pump(fn, Math.max(createMs, 0.001));
    // no call took it (they gave up meanwhile): the core claimed for one goes back
    if (sb.inflight === 0) this.releaseCore(sb);
  }

  sandboxFailed(from: NodeState, id: string, error: WireError): void {
    const sb = from.sandboxes.get(id);
    if (sb === undefined) return;
    const fn = sb.fn;
    this.log.warn({ sandboxId: id, fn: fn.key, node: sb.node.name, err: error }, 'sandbox failed to start');
    this.removeSandbox(sb);
    if (!fn.removed && fn.scale === 0 && fn.queued > 0) {
      this.failQueued(fn, 'sandbox_failed', `the sandbox for ${fn.key} failed to start on worker ${sb.node.name}: ${error.message}`);
    }
  }

  /** A sandbox vanished (crashed, or its worker was lost): fail its calls, replace it if calls wait. */
  sandboxLost(sb: SandboxState, reason: string): void {
    if (!this.tracked(sb)) return;
    this.log.warn({ sandboxId: sb.id, fn: sb.fn.key, node: sb.node.name, reason }, 'sandbox lost');
    this.removeSandbox(sb, reason);
    const fn = sb.fn;
    if (!fn.removed && fn.queued > 0 && fn.scale === 0) this.coldStart(fn);
  }

  /**
   * Forget a sandbox everywhere and fail the calls running on it. `reached`:
   * its worker was told to create it (false when the create frame could not be sent).
   */
  private removeSandbox(sb: SandboxState, reason?: string, reached = true): void {
    const fn = sb.fn;
    // first, so that releasing its slots below cannot put it back on the free list
    this.setStatus(sb, 'deleting');
    const node = sb.node;
    node.sandboxes.delete(sb.id);
    if (node.sandboxes.size === 0) this.hosts.delete(node);
    this.count--;
    fn.removeFree(sb);
    fn.sandboxes.delete(sb);
    for (const call of callsOn(sb)) {
      this.calls.delete(call.id);
      this.releaseSlot(sb, call);
      this.finish(call, errorResult('sandbox_failed', `sandbox ${sb.id} of ${fn.key} went away during the call: ${reason ?? 'deleted'}`));
    }
    const phantom = this.phantoms.get(sb) ?? 0;
    if (phantom > 0) {
      this.phantoms.delete(sb);
      sb.node.inflight -= phantom;
      sb.inflight -= phantom;
    }
    this.setSandboxRank(sb, -1);
    this.releaseCore(sb);
    if (reached) this.opts.hooks.onSandboxGone?.(sb);
    if (this.pending.size > 0) this.placePending();
  }

  /** Scale-down or cleanup: delete now if idle, else drain first. */
  deleteSandbox(sb: SandboxState): void {
    if (!this.tracked(sb)) return;
    sb.fn.removeFree(sb);
    if (sb.inflight > 0) {
      this.setStatus(sb, 'draining');
      return;
    }
    sb.node.send({ t: 'delete', sandboxId: sb.id });
    this.removeSandbox(sb);
  }

  /**
   * Take over a sandbox a (re)connecting worker still has: only of the exact
   * function incarnation and version, with the calls still running on it
   * holding their slots. False → the worker should delete it.
   */
  adopt(node: NodeState, report: SandboxReport): boolean {
    const fn = this.functions.get(report.functionKey);
    if (fn === undefined || fn.removed || fn.version !== report.version || fn.record.incarnation !== report.incarnation || this.idTaken(report.sandboxId)) return false;
    const sb = this.register(fn, report.sandboxId, node, 'ready');
    if (report.pid !== undefined) sb.pid = report.pid;
    const phantom = Math.min(report.inflight, sb.record.spec.concurrency);
    sb.inflight = phantom;
    if (phantom > 0) this.phantoms.set(sb, phantom);
    node.inflight += phantom;
    this.setSandboxRank(sb, this.sandboxRank(sb));
    const now = sb.lastUsed;
    fn.lastActivity = Math.max(fn.lastActivity, now);
    // The autoscaler has no history yet: do not let its first ticks take these away.
    fn.holdScaleDownUntil = Math.max(fn.holdScaleDownUntil, now + fn.record.spec.scale.stableWindowMs);
    fn.addFree(sb);
    this.pump(fn, 0);
    return true;
  }

  /** All of a node's sandboxes are gone (worker dead or reconnected without them). */
  nodeLost(node: NodeState, reason: string): void {
    for (const sb of [...node.sandboxes.values()]) this.sandboxLost(sb, reason);
  }

  /** A worker is stopping: its idle sandboxes go now, busy ones when their calls end; waiters go elsewhere. */
  nodeDraining(node: NodeState): void {
    const affected = new Set<FunctionRuntime>();
    for (const sb of [...node.sandboxes.values()]) {
      affected.add(sb.fn);
      if (sb.status !== 'creating') this.deleteSandbox(sb);
    }
    for (const fn of affected) if (!fn.removed && fn.queued > 0 && fn.scale === 0) this.coldStart(fn);
  }

  /** Queued calls may now find a worker (one joined, or freed memory): no scan of all functions. */
  retryWaiting(): void {
    if (this.pending.size > 0) this.placePending();
    if (this.starving.size === 0) return;
    const starving = [...this.starving];
    this.starving.clear();
    for (const fn of starving) if (!fn.removed && fn.queued > 0 && fn.scale === 0 && fn.pendingEntry === undefined) this.coldStart(fn);
  }

  // -------------------------------------------------------------- functions

  upsertFunction(record: FunctionRecord): FunctionRuntime {
    const key = `${record.namespace}/${record.name}`;
    const existing = this.functions.get(key);
    if (existing === undefined) {
      // one string for the key, shared by the map and the function
      const fn = new FunctionRuntime(record, this.clock.now(), this.opts.classes, this.opts.maxQueuePerFunction, key);
      this.functions.set(key, fn);
      return fn;
    }
    if (existing.version === record.version && existing.record.incarnation === record.incarnation) {
      existing.record = record;
      return existing;
    }
    existing.record = record;
    existing.recount();
    // Sandboxes of the old version drain and go; ones still being created are deleted when they report ready.
    for (const sb of [...existing.sandboxes]) if (sb.status !== 'creating') this.deleteSandbox(sb);
    if (existing.queued > 0) this.coldStart(existing);
    return existing;
  }

  removeFunction(key: string): void {
    const fn = this.functions.get(key);
    if (fn === undefined) return;
    fn.removed = true;
    this.functions.delete(key);
    this.failQueued(fn, 'not_found', `function ${key} was deleted`);
    // Idle sandboxes go now; busy ones finish their calls first; creating ones go when they report ready.
    for (const sb of [...fn.sandboxes]) if (sb.status !== 'creating') this.deleteSandbox(sb);
  }
}

export function sandboxSpec(record: FunctionRecord): SandboxSpec {
  const s = record.spec;
  const spec: SandboxSpec = {
    functionKey: `${record.namespace}/${record.name}`,
    version: record.version,
    incarnation: record.incarnation,
    runtime: s.runtime,
    env: s.env,
    concurrency: s.concurrency,
    timeoutMs: s.timeoutMs,
    bundleHash: record.bundleHash,
    priceClass: s.priceClass,
  };
  if (s.handler !== undefined) spec.handler = s.handler;
  if (s.command !== undefined) spec.command = s.command;
  return spec;
}
