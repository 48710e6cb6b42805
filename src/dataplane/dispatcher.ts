import type { Clock } from '../common/clock.js';
import { BatonError, type ErrorCode, type WireError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import type { ResultFrame, SandboxReport, SandboxSpec } from '../protocol/messages.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { FunctionRecord } from '../storage/store.js';
import { FunctionRuntime } from './function-runtime.js';
import type { Call, CallTiming, InvocationRequest, InvocationResult, NodeState, SandboxState } from './types.js';

export interface DispatcherHooks {
  /** Pick a node for a new sandbox of this function, or undefined if none can take it. */
  place(fn: FunctionRuntime): NodeState | undefined;
  /** True while the control plane should wait for workers instead of failing calls at once. */
  awaitingWorkers(): boolean;
  onSandboxCreated?(fn: FunctionRuntime): void;
  onCallDone?(call: Call, result: InvocationResult): void;
}

export interface DispatcherOptions {
  clock: Clock;
  /** Configured price classes: each function's queue has one FIFO per class. */
  classes: PriceClassSet;
  log: Logger;
  maxQueuePerFunction: number;
  hooks: DispatcherHooks;
}

const ENCODER = new TextEncoder();

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
  readonly sandboxes = new Map<string, SandboxState>();
  private readonly calls = new Map<string, Call>();
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly opts: DispatcherOptions) {
    this.clock = opts.clock;
    this.log = opts.log;
  }

  // ------------------------------------------------------------------ calls

  invoke(fn: FunctionRuntime, req: InvocationRequest, reply: (r: InvocationResult) => void): Call {
    const now = this.clock.now();
    const call: Call = {
      id: newId('call'),
      fn: fn.record,
      req,
      arrivedAt: now,
      enqueuedAt: -1,
      dispatchedAt: -1,
      coldMs: 0,
      sandbox: undefined,
      done: false,
      timer: undefined,
      reply,
    };
    fn.touch(now);
    fn.lastActivity = now;
    const sb = fn.takeFreeSlot();
    if (sb !== undefined) {
      this.dispatch(fn, call, sb, now);
    } else {
      if (fn.queued >= this.opts.maxQueuePerFunction) {
        this.finish(call, errorResult('overloaded', `function ${fn.key} has ${fn.queued} calls queued, the limit; retry later`, 1));
        return call;
      }
      call.enqueuedAt = now;
      fn.enqueue(call, now);
      if (fn.scale === 0 && !this.coldStart(fn)) return call;
    }
    if (!call.done) call.timer = setTimeout(() => this.timeout(call), fn.record.spec.timeoutMs);
    return call;
  }

  /** The caller went away: drop the call without answering. */
  cancel(call: Call): void {
    if (call.done) return;
    call.done = true;
    if (call.timer !== undefined) clearTimeout(call.timer);
    if (call.sandbox === undefined && call.enqueuedAt >= 0) {
      const fn = this.functions.get(`${call.fn.namespace}/${call.fn.name}`);
      if (fn !== undefined) {
        fn.touch(this.clock.now());
        fn.forgetQueued();
      }
    }
  }

  private timeout(call: Call): void {
    call.timer = undefined;
    if (call.done) return;
    const ms = call.fn.spec.timeoutMs;
    if (call.sandbox === undefined) {
      const fn = this.functions.get(`${call.fn.namespace}/${call.fn.name}`);
      if (fn !== undefined) {
        fn.touch(this.clock.now());
        fn.forgetQueued();
      }
      this.finish(call, errorResult('timeout', `no sandbox of ${call.fn.namespace}/${call.fn.name} became free within the function's timeout of ${ms} ms`));
    } else {
      // The slot stays taken until the worker answers (it stops the invocation at the same deadline).
      this.finish(call, errorResult('timeout', `function ${call.fn.namespace}/${call.fn.name} did not answer within its timeout of ${ms} ms`));
    }
  }

  private dispatch(fn: FunctionRuntime, call: Call, sb: SandboxState, now: number): void {
    call.sandbox = sb;
    call.dispatchedAt = now;
    sb.calls.add(call);
    sb.lastUsed = now;
    fn.inflight++;
    sb.node.inflight++;
    this.calls.set(call.id, call);
    const remaining = Math.max(1, Math.ceil(call.fn.spec.timeoutMs - (now - call.arrivedAt)));
    const sent = sb.node.send({
      t: 'invoke',
      callId: call.id,
      sandboxId: sb.id,
      method: call.req.method,
      path: call.req.path,
      headers: call.req.headers,
      body: call.req.body,
      timeoutMs: remaining,
      priceClass: call.req.priceClass,
    });
    if (!sent) this.sandboxLost(sb, `worker ${sb.node.name} is not connected`);
  }

  /** A worker answered a call. */
  result(from: NodeState, frame: ResultFrame): void {
    const call = this.calls.get(frame.callId);
    if (call === undefined || call.sandbox?.node !== from) {
      this.log.debug({ callId: frame.callId }, 'result for an unknown call (answered already or from before a restart)');
      return;
    }
    this.calls.delete(frame.callId);
    const sb = call.sandbox;
    const fn = this.functions.get(`${call.fn.namespace}/${call.fn.name}`);
    if (sb !== undefined) this.releaseSlot(fn, sb, call);
    const res: Omit<InvocationResult, 'timing' | 'callId'> = { status: frame.status, headers: frame.headers, body: frame.body };
    if (frame.error !== undefined) res.error = frame.error as WireError;
    this.finish(call, res, frame.execMs);
    if (fn !== undefined && sb !== undefined) this.afterRelease(fn, sb);
  }

  private releaseSlot(fn: FunctionRuntime | undefined, sb: SandboxState, call: Call): void {
    sb.calls.delete(call);
    sb.inflight--;
    sb.node.inflight--;
    if (fn !== undefined) {
      const now = this.clock.now();
      fn.touch(now);
      fn.inflight--;
      fn.lastActivity = now;
      fn.addFree(sb);
    }
  }

  private afterRelease(fn: FunctionRuntime, sb: SandboxState): void {
    if (sb.status === 'draining' && sb.inflight === 0) this.deleteSandbox(sb);
    else this.pump(fn, 0);
  }

  /** Give free slots to queued calls, oldest first. */
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
    if (call.timer !== undefined) clearTimeout(call.timer);
    const now = this.clock.now();
    const waited = (call.dispatchedAt >= 0 ? call.dispatchedAt : now) - call.arrivedAt;
    let queueMs = 0;
    let schedMs = waited - call.coldMs;
    if (call.coldMs === 0 && call.enqueuedAt >= 0) {
      queueMs = waited;
      schedMs = 0;
    }
    const timing: CallTiming = { queueMs, schedMs: Math.max(0, schedMs), coldMs: call.coldMs, execMs, totalMs: now - call.arrivedAt };
    const result: InvocationResult = { ...res, callId: call.id, timing };
    if (call.sandbox !== undefined) {
      result.sandboxId = call.sandbox.id;
      result.nodeId = call.sandbox.node.id;
    }
    this.opts.hooks.onCallDone?.(call, result);
    call.reply(result);
  }

  private failQueued(fn: FunctionRuntime, code: ErrorCode, message: string, retryAfter?: number): void {
    const now = this.clock.now();
    fn.touch(now);
    for (const call of fn.drainQueue(now)) this.finish(call, errorResult(code, message, retryAfter));
  }

  // -------------------------------------------------------------- sandboxes

  /** Start a sandbox now because calls wait and none exists. Returns false if the calls were failed. */
  private coldStart(fn: FunctionRuntime): boolean {
    if (this.createSandbox(fn)) return true;
    if (this.opts.hooks.awaitingWorkers()) return true;
    this.failQueued(fn, 'no_capacity', 'no worker is ready to run a sandbox; check `baton nodes`', 5);
    return false;
  }

  createSandbox(fn: FunctionRuntime): boolean {
    const node = this.opts.hooks.place(fn);
    if (node === undefined) return false;
    const sb = this.register(fn, newId('sb'), node, 'creating');
    if (fn.record.bundleHash !== '') node.bundles.add(fn.record.bundleHash);
    this.opts.hooks.onSandboxCreated?.(fn);
    if (!node.send({ t: 'create', sandboxId: sb.id, spec: sandboxSpec(fn.record) })) {
      this.removeSandbox(sb);
      return false;
    }
    return true;
  }

  /** Create the record of a sandbox of the function's current version and index it everywhere. */
  private register(fn: FunctionRuntime, id: string, node: NodeState, status: 'creating' | 'ready'): SandboxState {
    const now = this.clock.now();
    const sb: SandboxState = {
      id,
      fnKey: fn.key,
      version: fn.version,
      node,
      status,
      concurrency: fn.record.spec.concurrency,
      inflight: 0,
      calls: new Set(),
      freeIndex: -1,
      createdAt: this.clock.wallNow(),
      requestedAt: now,
      lastUsed: now,
    };
    fn.sandboxes.add(sb);
    node.sandboxes.add(sb);
    this.sandboxes.set(id, sb);
    return sb;
  }

  sandboxReady(from: NodeState, id: string, createMs: number): void {
    const sb = this.sandboxes.get(id);
    if (sb === undefined || sb.node !== from || sb.status !== 'creating') return;
    const fn = this.functions.get(sb.fnKey);
    sb.status = 'ready';
    if (fn === undefined || sb.version !== fn.version) {
      this.deleteSandbox(sb);
      return;
    }
    fn.addFree(sb);
    this.pump(fn, Math.max(createMs, 0.001));
  }

  sandboxFailed(from: NodeState, id: string, error: WireError): void {
    const sb = this.sandboxes.get(id);
    if (sb === undefined || sb.node !== from) return;
    const fn = this.functions.get(sb.fnKey);
    this.log.warn({ sandboxId: id, fn: sb.fnKey, node: sb.node.name, err: error }, 'sandbox failed to start');
    this.removeSandbox(sb);
    if (fn !== undefined && fn.scale === 0 && fn.queued > 0) {
      this.failQueued(fn, 'sandbox_failed', `the sandbox for ${fn.key} failed to start on worker ${sb.node.name}: ${error.message}`);
    }
  }

  /** A sandbox vanished (crashed, or its worker was lost): fail its calls, replace it if calls wait. */
  sandboxLost(sb: SandboxState, reason: string): void {
    if (!this.sandboxes.has(sb.id)) return;
    this.log.warn({ sandboxId: sb.id, fn: sb.fnKey, node: sb.node.name, reason }, 'sandbox lost');
    this.removeSandbox(sb, reason);
    const fn = this.functions.get(sb.fnKey);
    if (fn !== undefined && fn.queued > 0 && fn.scale === 0) this.coldStart(fn);
  }

  private removeSandbox(sb: SandboxState, reason?: string): void {
    const fn = this.functions.get(sb.fnKey);
    this.sandboxes.delete(sb.id);
    sb.node.sandboxes.delete(sb);
    if (fn !== undefined) {
      fn.removeFree(sb);
      fn.sandboxes.delete(sb);
    }
    for (const call of [...sb.calls]) {
      this.calls.delete(call.id);
      this.releaseSlot(fn, sb, call);
      this.finish(call, errorResult('sandbox_failed', `sandbox ${sb.id} of ${sb.fnKey} went away during the call: ${reason ?? 'deleted'}`));
    }
    sb.status = 'deleting';
  }

  /** Scale-down or cleanup: delete now if idle, else drain first. */
  deleteSandbox(sb: SandboxState): void {
    if (!this.sandboxes.has(sb.id)) return;
    const fn = this.functions.get(sb.fnKey);
    fn?.removeFree(sb);
    if (sb.inflight > 0) {
      sb.status = 'draining';
      return;
    }
    sb.node.send({ t: 'delete', sandboxId: sb.id });
    this.removeSandbox(sb);
  }

  /** Take over a sandbox a (re)connecting worker still has. False → the worker should delete it. */
  adopt(node: NodeState, report: SandboxReport): boolean {
    const fn = this.functions.get(report.functionKey);
    if (fn === undefined || fn.version !== report.version || this.sandboxes.has(report.sandboxId)) return false;
    const sb = this.register(fn, report.sandboxId, node, 'ready');
    const now = sb.requestedAt;
    fn.lastActivity = Math.max(fn.lastActivity, now);
    fn.addFree(sb);
    this.pump(fn, 0);
    return true;
  }

  /** All of a node's sandboxes are gone (worker dead or reconnected without them). */
  nodeLost(node: NodeState, reason: string): void {
    for (const sb of [...node.sandboxes]) this.sandboxLost(sb, reason);
  }

  /** Queued calls may now find a worker (one joined). */
  retryWaiting(): void {
    for (const fn of this.functions.values()) if (fn.queued > 0 && fn.scale === 0) this.coldStart(fn);
  }

  // -------------------------------------------------------------- functions

  upsertFunction(record: FunctionRecord): FunctionRuntime {
    const key = `${record.namespace}/${record.name}`;
    const existing = this.functions.get(key);
    if (existing === undefined) {
      const fn = new FunctionRuntime(record, this.clock.now(), this.opts.classes);
      this.functions.set(key, fn);
      return fn;
    }
    if (existing.version === record.version) {
      existing.record = record;
      return existing;
    }
    existing.record = record;
    // Sandboxes of the old version drain and go; ones still being created are deleted when they report ready.
    for (const sb of [...existing.sandboxes]) if (sb.status !== 'creating') this.deleteSandbox(sb);
    if (existing.queued > 0) this.coldStart(existing);
    return existing;
  }

  removeFunction(key: string): void {
    const fn = this.functions.get(key);
    if (fn === undefined) return;
    this.failQueued(fn, 'not_found', `function ${key} was deleted`);
    for (const sb of [...fn.sandboxes]) if (sb.status !== 'creating') this.deleteSandbox(sb);
    this.functions.delete(key);
  }
}

export function sandboxSpec(record: FunctionRecord): SandboxSpec {
  const s = record.spec;
  const spec: SandboxSpec = {
    functionKey: `${record.namespace}/${record.name}`,
    version: record.version,
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
