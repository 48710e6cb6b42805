import { BatonError, type WireError } from '../common/errors.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { FunctionRuntime } from '../dataplane/function-runtime.js';
import type { Call, InvocationRequest, InvocationResult, RoutedRequest } from '../dataplane/types.js';
import { ownerCore } from '../protocol/shard.js';
import type { CoreToCore, CoreToMain, WireRequest } from './core-messages.js';
import type { PortOutbox } from './port-outbox.js';

const ENCODER = new TextEncoder();

/** An answer that never reached a sandbox: the error as the caller sees it. */
export function errorResult(err: BatonError, callId = ''): InvocationResult {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
  return { callId, status: err.status, headers, body: ENCODER.encode(JSON.stringify({ error: err.toWire() })), error: err.toWire(), timing: { queueMs: 0, schedMs: 0, coldMs: 0, execMs: 0, totalMs: 0 } };
}

/** A monotonic time of this thread as an absolute one (threads' performance.now() origins differ). */
export const toAbsolute = (localMs: number): number => performance.timeOrigin + localMs;
export const toLocal = (absoluteMs: number): number => absoluteMs - performance.timeOrigin;

export function wireOf(req: RoutedRequest, now: number): WireRequest {
  const w: WireRequest = { method: req.method, path: req.path, headers: req.headers, body: req.body, priceClass: req.priceClass, admitted: req.priceClass !== undefined, arrivedAt: toAbsolute(req.arrivedAt ?? now) };
  if (req.parentId !== undefined) w.parentId = req.parentId;
  if (req.depth !== undefined) w.depth = req.depth;
  return w;
}

/** A routed request whose class is settled: the one it carries, else `own` (the function's). */
function settled(req: RoutedRequest, own: string): InvocationRequest {
  if (req.priceClass === undefined) req.priceClass = own;
  return req as InvocationRequest;
}

/** The request a call handed over from another thread runs as, at its settled class. */
export function requestOf(w: WireRequest, priceClass: string, async = false): InvocationRequest {
  const req: InvocationRequest = { method: w.method, path: w.path, headers: w.headers, body: w.body, priceClass, arrivedAt: toLocal(w.arrivedAt) };
  if (w.parentId !== undefined) req.parentId = w.parentId;
  if (w.depth !== undefined) req.depth = w.depth;
  if (async) req.async = true;
  return req;
}

/**
 * Calls across scheduler cores. A core owns a shard of the functions
 * (`ownerCore`); a call that arrives on a core that does not own its function
 * — an HTTP request the kernel handed to this core's listener, a chain call
 * made from a sandbox this core runs — is sent to the owner over a
 * MessagePort and its answer comes back the same way, exactly once: the
 * forwarding side keeps the reply until the owner's `done` (or a cancel), the
 * owner keeps the call until it is answered. The main thread hands async
 * attempts to owners the same way.
 */
export class CoreCalls {
  /** Replies of calls this core sent to an owner, by request id. */
  private readonly forwarded = new Map<number, (r: InvocationResult) => void>();
  /** Calls this core runs for another thread, by `<core or m>:<rid>`. */
  private readonly serving = new Map<string, Call>();
  private nextRid = 1;

  constructor(
    private readonly index: number,
    private readonly cores: number,
    private readonly dispatcher: Dispatcher,
    private readonly peers: readonly (PortOutbox<CoreToCore> | undefined)[],
    private readonly toMain: PortOutbox<CoreToMain>,
    private readonly now: () => number,
    /**
     * The class a call handed over from another core runs at, settled here
     * (the function's own, or the higher of its parent's and the one asked
     * for) and admitted against the budget if the other core could not;
     * throws the refusal (budget_exceeded).
     */
    private readonly settle: (fn: FunctionRuntime, w: WireRequest) => string,
    /** A call was handed to its owner (for metrics). */
    private readonly onHandOver: () => void = () => undefined,
  ) {}

  owns(key: string): boolean {
    return ownerCore(key, this.cores) === this.index;
  }

  /** Run a call on this core (it owns the function); an unsettled class is the function's own. Returns a cancel. */
  runHere(key: string, req: RoutedRequest, reply: (r: InvocationResult) => void, id?: string): { call: Call | undefined; cancel: () => void } {
    const fn = this.dispatcher.functions.get(key);
    if (fn === undefined) {
      const [ns, name] = key.split('/');
      reply(errorResult(new BatonError('not_found', `function "${name ?? key}" not found in namespace "${ns ?? ''}"`), id));
      return { call: undefined, cancel: () => undefined };
    }
    const call = this.dispatcher.invoke(fn, settled(req, fn.record.spec.priceClass), reply, id);
    return { call, cancel: () => this.dispatcher.cancel(call) };
  }

  /** A call another thread handed over: its class settled (and admitted) here, then run. */
  private runHandedOver(key: string, w: WireRequest, reply: (r: InvocationResult) => void, id?: string): Call | undefined {
    const fn = this.dispatcher.functions.get(key);
    if (fn === undefined) return this.runHere(key, requestOf(w, ''), reply, id).call;
    let priceClass: string;
    try {
      priceClass = this.settle(fn, w);
    } catch (e) {
      reply(errorResult(e instanceof BatonError ? e : new BatonError('internal', String(e)), id));
      return undefined;
    }
    return this.dispatcher.invoke(fn, requestOf(w, priceClass, id !== undefined), reply, id);
  }

  /** Run a call wherever its function lives; `reply` once. Returns a cancel (the caller went away). */
  call(key: string, req: RoutedRequest, reply: (r: InvocationResult) => void): () => void {
    const owner = ownerCore(key, this.cores);
    if (owner === this.index) return this.runHere(key, req, reply).cancel;
    const peer = this.peers[owner] as PortOutbox<CoreToCore>;
    const rid = this.rid();
    this.onHandOver();
    this.forwarded.set(rid, reply);
    peer.send({ t: 'call', rid, key, req: wireOf(req, this.now()) });
    return () => {
      if (this.forwarded.delete(rid)) peer.send({ t: 'cancel', rid });
    };
  }

  /** A chain call from `parent` (running here) to `key`, wherever that lives. */
  child(parent: Call, key: string, req: RoutedRequest, reply: (r: InvocationResult) => void): void {
    const owner = ownerCore(key, this.cores);
    if (owner === this.index) {
      const fn = this.dispatcher.functions.get(key);
      if (fn === undefined) reply(errorResult(new BatonError('not_found', `ctx.invoke: function ${key} no longer exists`)));
      else this.dispatcher.invokeChild(parent, fn, settled(req, fn.record.spec.priceClass), reply);
      return;
    }
    const peer = this.peers[owner] as PortOutbox<CoreToCore>;
    const rid = this.rid();
    this.onHandOver();
    const done = this.dispatcher.remoteChild(parent, { abandon: () => peer.send({ t: 'abandon', rid, parentId: parent.id }) });
    this.forwarded.set(rid, (r) => {
      done();
      reply(r);
    });
    req.parentId = parent.id;
    req.depth = (parent.req.depth ?? 0) + 1;
    const w = wireOf(req, this.now());
    // the owner settles the class (at least the parent's) and admits it
    w.parentClass = parent.req.priceClass;
    w.admitted = false;
    peer.send({ t: 'call', rid, key, req: w });
  }

  /** A message from another core. */
  fromPeer(from: number, m: CoreToCore): void {
    switch (m.t) {
      case 'call': {
        const peer = this.peers[from] as PortOutbox<CoreToCore>;
        const tag = `${from}:${m.rid}`;
        const call = this.runHandedOver(m.key, m.req, (result) => {
          this.serving.delete(tag);
          peer.send({ t: 'done', rid: m.rid, result });
        });
        if (call !== undefined && !call.done) this.serving.set(tag, call);
        return;
      }
      case 'done':
        this.answered(m.rid, m.result);
        return;
      case 'cancel': {
        const call = this.serving.get(`${from}:${m.rid}`);
        if (call === undefined) return;
        this.serving.delete(`${from}:${m.rid}`);
        this.dispatcher.cancel(call);
        return;
      }
      case 'abandon': {
        const call = this.serving.get(`${from}:${m.rid}`);
        if (call !== undefined) this.dispatcher.abandon(call, m.parentId);
        return;
      }
    }
  }

  /** An async call's attempt, from the main thread. */
  fromMain(rid: number, key: string, id: string, w: WireRequest): void {
    const tag = `m:${rid}`;
    const call = this.runHandedOver(
      key,
      w,
      (result) => {
        this.serving.delete(tag);
        this.toMain.send({ t: 'done', rid, result });
      },
      id,
    );
    if (call !== undefined && !call.done) this.serving.set(tag, call);
  }

  /** Every call forwarded from here fails: the thread is stopping. */
  failAll(err: BatonError): void {
    const waiting = [...this.forwarded.values()];
    this.forwarded.clear();
    for (const reply of waiting) reply(errorResult(err));
  }

  private answered(rid: number, result: InvocationResult): void {
    const reply = this.forwarded.get(rid);
    if (reply === undefined) return;
    this.forwarded.delete(rid);
    reply(result);
  }

  private rid(): number {
    const rid = this.nextRid;
    this.nextRid = this.nextRid >= 2 ** 31 ? 1 : this.nextRid + 1;
    return rid;
  }
}

/** An error as it crosses threads in a reply (the Retry-After a BatonError carries included). */
export interface ReplyError extends WireError {
  retryAfter?: number;
}

export function replyError(e: unknown): ReplyError {
  const err = e instanceof BatonError ? e : new BatonError('internal', e instanceof Error ? e.message : String(e));
  const w: ReplyError = err.toWire();
  if (err.retryAfter !== undefined) w.retryAfter = err.retryAfter;
  return w;
}

export function errorOfReply(w: ReplyError): BatonError {
  const e = BatonError.fromWire(w);
  return w.retryAfter === undefined ? e : new BatonError(e.code, e.message, { ...(e.details === undefined ? {} : { details: e.details }), retryAfter: w.retryAfter });
}
