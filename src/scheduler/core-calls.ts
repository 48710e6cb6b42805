import { asBatonError, BatonError, type WireError } from '../common/errors.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { Call, InvocationRequest, InvocationResult, RoutedRequest } from '../dataplane/types.js';
import type { PriceClassSet } from '../policies/price-classes.js';
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
  const w: WireRequest = { method: req.method, path: req.path, headers: req.headers, body: req.body, priceClass: req.priceClass, arrivedAt: toAbsolute(req.arrivedAt ?? now) };
  if (req.parentId !== undefined) w.parentId = req.parentId;
  if (req.depth !== undefined) w.depth = req.depth;
  return w;
}

/** The request a call handed over from another thread runs as (its class not settled yet, unless it carries one). */
export function requestOf(w: WireRequest, async = false): RoutedRequest {
  const req: RoutedRequest = { method: w.method, path: w.path, headers: w.headers, body: w.body, priceClass: w.priceClass, arrivedAt: toLocal(w.arrivedAt) };
  if (w.parentId !== undefined) req.parentId = w.parentId;
  if (w.depth !== undefined) req.depth = w.depth;
  if (async) req.async = true;
  return req;
}

/** How the core that owns a function admits its calls. */
export interface Admission {
  classes: PriceClassSet;
  /** Throws budget_exceeded when the namespace's calls of this class are throttled now (ThrottleTable). */
  admit(namespace: string, priceClass: string): void;
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
 *
 * Wherever a call came from — a client of this core or of another, a chain
 * call, an async attempt — the owner settles its class and admits it against
 * the budget in one place (`start`): the one asked for, else the function's
 * own; a chain call at least its parent's.
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
    private readonly admission: Admission,
    /** A call was handed to its owner (for metrics). */
    private readonly onHandOver: () => void = () => undefined,
  ) {}

  owns(key: string): boolean {
    return ownerCore(key, this.cores) === this.index;
  }

  /**
   * Start a call of a function this core owns: its class settled (the one
   * asked for, else the function's own; a chain call at least its parent's),
   * admitted against the budget unless it was when accepted (an async
   * attempt), then run — as `parent`'s child if there is one here. Refusals
   * are answered through `reply`. Undefined when no call was started.
   */
  private start(key: string, req: RoutedRequest, reply: (r: InvocationResult) => void, o: { id?: string; parent?: Call; parentClass?: string | undefined; admit: boolean }): Call | undefined {
    const fn = this.dispatcher.functions.get(key);
    try {
      if (fn === undefined) {
        const [ns, name] = key.split('/');
        throw new BatonError('not_found', `function "${name ?? key}" not found in namespace "${ns ?? ''}"`);
      }
      const own = fn.record.spec.priceClass;
      const parentClass = o.parentClass ?? o.parent?.req.priceClass;
      // no priority inversion: a chain call runs at least at its caller's class
      const cls = parentClass === undefined ? (req.priceClass ?? own) : this.admission.classes.effective([parentClass, req.priceClass ?? own]).name;
      if (o.admit) this.admission.admit(fn.record.namespace, cls);
      req.priceClass = cls;
      const settled = req as InvocationRequest;
      return o.parent === undefined ? this.dispatcher.invoke(fn, settled, reply, o.id) : this.dispatcher.invokeChild(o.parent, fn, settled, reply);
    } catch (e) {
      reply(errorResult(asBatonError(e), o.id));
      return undefined;
    }
  }

  /** Run a call wherever its function lives; `reply` once. Returns a cancel (the caller went away). */
  call(key: string, req: RoutedRequest, reply: (r: InvocationResult) => void): () => void {
    const owner = ownerCore(key, this.cores);
    if (owner === this.index) {
      const call = this.start(key, req, reply, { admit: true });
      return () => {
        if (call !== undefined) this.dispatcher.cancel(call);
      };
    }
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
      this.start(key, req, reply, { parent, admit: true });
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
    peer.send({ t: 'call', rid, key, req: w });
  }

  /** A message from another core. */
  fromPeer(from: number, m: CoreToCore): void {
    switch (m.t) {
      case 'call': {
        const peer = this.peers[from] as PortOutbox<CoreToCore>;
        const tag = `${from}:${m.rid}`;
        const call = this.start(
          m.key,
          requestOf(m.req),
          (result) => {
            this.serving.delete(tag);
            peer.send({ t: 'done', rid: m.rid, result });
          },
          { parentClass: m.req.parentClass, admit: true },
        );
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
    // admitted when it was accepted: its retries are not refused for the budget
    const call = this.start(
      key,
      requestOf(w, true),
      (result) => {
        this.serving.delete(tag);
        this.toMain.send({ t: 'done', rid, result });
      },
      { id, admit: false },
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
