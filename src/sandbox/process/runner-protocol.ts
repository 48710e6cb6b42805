import type { ChainRequest } from '../runtime.js';

/** Messages between the worker and a node runner process (IPC, advanced serialization). */
export type ToRunner =
  | { t: 'load'; codeDir: string; scratchDir: string; handler: string; env: Record<string, string> }
  | {
      t: 'invoke';
      id: number;
      method: string;
      path: string;
      headers: Record<string, string>;
      body: Uint8Array;
      callId: string;
      priceClass: string;
      /** A bigger response body fails the call with response_too_large instead of crossing the IPC channel. */
      maxResponseBytes: number;
      /** The call this one was made from (call chains). */
      parentId?: string;
    }
  | {
      /** The answer to a `call`: the callee's response, or the platform's error. */
      t: 'callResult';
      reqId: number;
      status: number;
      headers: Record<string, string>;
      body: Uint8Array;
      callId?: string;
      error?: { code: string; message: string };
    };

/** One line a function wrote to process.stdout/stderr (console.*), tagged with the call it was written from. */
export interface RunnerLogLine {
  /** Epoch ms when it was written. */
  ts: number;
  stream: 'stdout' | 'stderr';
  line: string;
  /** Absent for lines written outside any running call (module load, timers that outlive their call). */
  callId?: string;
}

export type FromRunner =
  | { t: 'up' }
  /** Log lines, batched; sent before the result of a call that wrote them. `dropped`: lines lost because the function wrote faster than they could be sent. */
  | { t: 'logs'; lines: RunnerLogLine[]; dropped?: number }
  | { t: 'ready'; initMs: number }
  | { t: 'loadError'; message: string }
  | {
      t: 'result';
      id: number;
      status: number;
      headers: Record<string, string>;
      body: Uint8Array;
      execMs: number;
      /** This call's share of the runner's CPU time while it ran, µs. */
      cpuUs: number;
      error?: { code: 'function_error' | 'response_too_large'; message: string };
    }
  | ({
      /** `ctx.invoke` inside the invocation `id`; answered by a `callResult` with the same `reqId`. */
      t: 'call';
      id: number;
      reqId: number;
    } & ChainRequest);

export type ParsedChainCall = { ok: true; id: number; reqId: number; req: ChainRequest } | { ok: false; reqId: number | undefined; message: string };

/** Most headers a chain call may carry, names and values together (what HTTP servers commonly accept). */
export const MAX_CHAIN_HEADER_BYTES = 64 * 1024;

function isRecordOfStrings(v: unknown): v is Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const x of Object.values(v)) if (typeof x !== 'string') return false;
  return true;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Check a `call` message from a runner. The runner runs the function's own
 * code, which can send anything over its IPC channel: nothing in the message
 * is trusted until it passes here.
 */
export function parseChainCall(m: Record<string, unknown>): ParsedChainCall {
  const reqId = isCount(m['reqId']) ? m['reqId'] : undefined;
  const bad = (message: string): ParsedChainCall => ({ ok: false, reqId, message: `ctx.invoke: ${message}` });
  if (reqId === undefined) return bad('reqId must be a non-negative integer');
  const id = m['id'];
  if (!isCount(id)) return bad('id must be a non-negative integer');
  const fn = m['function'];
  const method = m['method'];
  const path = m['path'];
  const headers = m['headers'];
  const body = m['body'];
  const priceClass = m['priceClass'];
  if (typeof fn !== 'string' || fn === '' || fn.length > 128) return bad('the function name must be a string of 1 to 128 characters');
  if (typeof method !== 'string' || method === '' || method.length > 16) return bad('method must be a string of 1 to 16 characters');
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > 8192) return bad(`path must be a string starting with "/", of at most 8192 characters, got ${JSON.stringify(String(path).slice(0, 64))}`);
  if (!isRecordOfStrings(headers)) return bad('headers must map names to string values');
  if (!(body instanceof Uint8Array)) return bad('body must be bytes');
  if (priceClass !== undefined && typeof priceClass !== 'string') return bad('priceClass must be a string');
  let headerBytes = 0;
  for (const [k, v] of Object.entries(headers)) headerBytes += k.length + v.length;
  if (headerBytes > MAX_CHAIN_HEADER_BYTES) return bad(`headers of ${headerBytes} bytes exceed the limit of ${MAX_CHAIN_HEADER_BYTES} bytes`);
  const req: ChainRequest = { function: fn, method, path, headers, body };
  if (priceClass !== undefined) req.priceClass = priceClass;
  return { ok: true, id, reqId, req };
}
