/**
 * One error type for the whole system. The `code` says what went wrong; callers
 * branch on the code, never on the class. Over the wire errors travel as
 * `{ code, message, details }` (see toWire / fromWire).
 */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_manifest'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'method_not_allowed'
  | 'throttled'
  | 'overloaded'
  | 'timeout'
  | 'sandbox_failed'
  | 'function_error'
  | 'no_capacity'
  | 'protocol_error'
  | 'response_too_large'
  | 'memory_pressure'
  | 'budget_exceeded'
  | 'chain_too_deep'
  | 'chain_broken'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_manifest: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  throttled: 429,
  function_error: 502,
  sandbox_failed: 502,
  overloaded: 503,
  no_capacity: 503,
  timeout: 504,
  protocol_error: 400,
  response_too_large: 502,
  memory_pressure: 503,
  budget_exceeded: 429,
  // A call chain longer than the control plane allows (a function recursing
  // without end). 400, not 429 or 508: retrying the same chain can never
  // succeed, so nothing should invite a retry (429 says "later"), and 508 is
  // WebDAV's loop detection, which generic HTTP clients do not know.
  chain_too_deep: 400,
  // A chain call whose answer cannot come: the worker's link to the control
  // plane dropped, or the call that made it ended first.
  chain_broken: 502,
  internal: 500,
};

export interface WireError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export class BatonError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds a client should wait before retrying (429/503). */
  readonly retryAfter: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: Record<string, unknown>; cause?: unknown; retryAfter?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BatonError';
    this.code = code;
    this.details = opts.details;
    this.retryAfter = opts.retryAfter;
  }

  get status(): number {
    return STATUS[this.code];
  }

  toWire(): WireError {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static fromWire(w: { code: string; message: string; details?: Record<string, unknown> }): BatonError {
    const code: ErrorCode = w.code in STATUS ? (w.code as ErrorCode) : 'internal';
    return new BatonError(code, w.message, w.details === undefined ? {} : { details: w.details });
  }
}

/** Wrap anything thrown into a BatonError without losing the original. */
export function asBatonError(e: unknown): BatonError {
  if (e instanceof BatonError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new BatonError('internal', message, { cause: e });
}
