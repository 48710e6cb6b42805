import { asBatonError, BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Call, InvocationResult, NodeState, RoutedRequest } from '../dataplane/types.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { CallResultFrame, ChainCallFrame } from '../protocol/messages.js';
import { DROP_REQUEST, responseOf } from './invoke-api.js';

export interface ChainCallsOptions {
  /** The call running on this worker that a chain call names as its parent (Dispatcher.runningCallOn). */
  runningCallOn(node: NodeState, callId: string): Call | undefined;
  /**
   * Run the accepted call as `parent`'s child, here or on the core that owns
   * the callee, which answers 404 if there is none, settles its class (the higher of the parent's and the
   * one asked for, else the callee's own) and admits it against the budget;
   * `reply` once (CoreCalls.child).
   */
  invokeChild(parent: Call, key: string, req: RoutedRequest, reply: (r: InvocationResult) => void): void;
  classes: PriceClassSet;
  log: Logger;
  /** The invocation body limit, the same as for clients. */
  maxInvokeBodyBytes: number;
  /** Deepest call a chain may make: a client's call is at depth 0, a call it makes at 1, and so on. */
  maxDepth: number;
}

export const DEFAULT_MAX_CALL_DEPTH = 16;

const ENCODER = new TextEncoder();
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const UNSAFE_VALUE = /[\r\n\0]/;
/** Methods the Fetch API refuses to build a request with (the callee could not see the call). */
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);

interface Accepted {
  parent: Call;
  key: string;
  req: RoutedRequest;
}

/**
 * Call chains on the control plane (`ctx.invoke` in a node function): a
 * worker's `call` frame names the running call it is made from; the new call
 * stays in that call's namespace, runs at least at its class (no priority
 * inversion: the maximum of the caller's class and the one asked for), one
 * level deeper, up to `maxDepth`. It then goes through the dispatcher exactly
 * as a client's call does, and its response goes back as `callResult`.
 * It never passes through the public gateway or any API key: the worker's
 * authenticated link and the parent call vouch for it.
 */
export class ChainCalls {
  constructor(private readonly o: ChainCallsOptions) {
    if (!Number.isInteger(o.maxDepth) || o.maxDepth < 1) throw new RangeError(`maxCallDepth must be a positive integer, got ${o.maxDepth}`);
  }

  /** A worker's `call` frame: answered with a `callResult` over the same link, always. */
  handle(from: NodeState, f: ChainCallFrame): void {
    let accepted: Accepted;
    try {
      accepted = this.accept(from, f);
    } catch (e) {
      const err = asBatonError(e);
      this.o.log.debug({ node: from.name, parentCallId: f.parentCallId, function: f.function, code: err.code, err: err.message }, 'chain call refused');
      from.send(errorFrame(f.reqId, err));
      return;
    }
    this.o.invokeChild(accepted.parent, accepted.key, accepted.req, (r) => from.send(resultFrame(f.reqId, r)));
  }

  private accept(from: NodeState, f: ChainCallFrame): Accepted {
    const name = f.function;
    const parent = this.o.runningCallOn(from, f.parentCallId);
    if (parent === undefined) {
      throw new BatonError('chain_broken', `call ${f.parentCallId} is not running on worker ${from.name} (it has ended, or it is not this worker's call): chain calls are made only from a call in progress`);
    }
    const ns = parent.fn.namespace;
    const dot = name.indexOf('.');
    if (dot !== -1) {
      throw new BatonError('forbidden', `ctx.invoke("${name}"): a function calls only functions of its own namespace "${ns}", but "${name}" names namespace "${name.slice(dot + 1)}"`);
    }
    const depth = (parent.req.depth ?? 0) + 1;
    if (depth > this.o.maxDepth) {
      throw new BatonError('chain_too_deep', `ctx.invoke("${name}") from ${ns}/${parent.fn.name}: the call chain would be ${depth} calls deep, past the limit of ${this.o.maxDepth} (does the function call itself without end?)`, {
        details: { depth, maxDepth: this.o.maxDepth },
      });
    }
    const key = `${ns}/${name}`;
    const headers = Object.create(null) as Record<string, string>;
    for (const [k, v] of Object.entries(f.headers)) {
      const key = k.toLowerCase();
      if (!TOKEN.test(key)) throw new BatonError('bad_request', `ctx.invoke("${name}"): header name ${JSON.stringify(k.slice(0, 64))} is not an HTTP token`);
      if (UNSAFE_VALUE.test(v)) throw new BatonError('bad_request', `ctx.invoke("${name}"): header ${key} has a CR, LF or NUL in its value`);
      headers[key] = v;
    }
    const asked = f.priceClass ?? headers['x-price-class'];
    if (asked !== undefined && !this.o.classes.has(asked)) {
      throw new BatonError('bad_request', `ctx.invoke("${name}"): unknown price class "${asked}"; configured classes: ${this.o.classes.names().join(', ')}`);
    }
    for (const k of DROP_REQUEST) delete headers[k];
    if (f.body.byteLength > this.o.maxInvokeBodyBytes) {
      throw new BatonError('payload_too_large', `ctx.invoke("${name}"): a body of ${f.body.byteLength} bytes exceeds the limit of ${this.o.maxInvokeBodyBytes} bytes`);
    }
    const method = f.method.toUpperCase();
    if (!TOKEN.test(method) || FORBIDDEN_METHODS.has(method)) throw new BatonError('bad_request', `ctx.invoke("${name}"): method ${JSON.stringify(f.method)} cannot be used`);
    if (!f.path.startsWith('/')) throw new BatonError('bad_request', `ctx.invoke("${name}"): path must start with "/", got ${JSON.stringify(f.path.slice(0, 64))}`);
    return { parent, key, req: { method, path: f.path, headers, body: f.body, priceClass: asked } };
  }
}

function errorFrame(reqId: number, err: BatonError): CallResultFrame {
  const error = err.toWire();
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
  return { t: 'callResult', reqId, status: err.status, headers, body: ENCODER.encode(JSON.stringify({ error })), error };
}

/** The callee's answer exactly as a client of the public gateway would get it, without the HTTP framing. */
function resultFrame(reqId: number, r: InvocationResult): CallResultFrame {
  const out = responseOf(r);
  const frame: CallResultFrame = { t: 'callResult', reqId, status: out.status, headers: out.headers, body: typeof out.body === 'string' ? ENCODER.encode(out.body) : out.body };
  // (a call refused before it existed, by the core that owns the callee, has no id)
  if (r.callId !== '') frame.callId = r.callId;
  if (r.error !== undefined) frame.error = r.error;
  // a 1xx from the callee is not a final status: responseOf made it a 502 with an error body
  else if (out.status !== r.status) frame.error = { code: 'function_error', message: `the function answered with status ${r.status}, which is not a final HTTP status` };
  return frame;
}
