import { Packr } from 'msgpackr';
import type { z } from 'zod';
import { BatonError } from '../common/errors.js';
import { controlFrame, workerFrame, type ControlFrame, type WorkerFrame } from './messages.js';

// Plain maps, no records/structures extension: both ends must read every frame
// without shared state, and binary fields come back as Uint8Array.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export function encodeFrame(frame: ControlFrame | WorkerFrame): Uint8Array {
  return packr.pack(frame);
}

const ID_MAX = 128;

function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= ID_MAX;
}

function isStringRecord(v: unknown): v is Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false;
  for (const k in v) if (typeof (v as Record<string, unknown>)[k] !== 'string') return false;
  return true;
}

function optNonNeg(v: unknown): boolean {
  return v === undefined || (typeof v === 'number' && v >= 0 && Number.isFinite(v));
}

/**
 * The frames that carry every call (a worker's `result`, the control plane's
 * `invoke`) are checked by hand: the same rules as their schemas in
 * messages.ts, at a fraction of zod's cost. Anything unusual falls back to
 * the schema, which produces the precise error. A unit test keeps the two in
 * agreement.
 */
function fastResult(raw: Record<string, unknown>): boolean {
  const status = raw['status'];
  const err = raw['error'];
  return (
    isId(raw['callId']) &&
    isId(raw['sandboxId']) &&
    typeof status === 'number' &&
    Number.isSafeInteger(status) &&
    status >= 100 &&
    status <= 599 &&
    isStringRecord(raw['headers']) &&
    raw['body'] instanceof Uint8Array &&
    typeof raw['execMs'] === 'number' &&
    Number.isFinite(raw['execMs']) &&
    raw['execMs'] >= 0 &&
    optNonNeg(raw['cpuMs']) &&
    optNonNeg(raw['mbMs']) &&
    optNonNeg(raw['preemptMs']) &&
    optNonNeg(raw['waitMs']) &&
    (err === undefined || (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' && typeof (err as { message?: unknown }).message === 'string' && (err as { details?: unknown }).details === undefined))
  );
}

function fastInvoke(raw: Record<string, unknown>): boolean {
  const t = raw['timeoutMs'];
  return (
    isId(raw['callId']) &&
    isId(raw['sandboxId']) &&
    typeof raw['method'] === 'string' &&
    typeof raw['path'] === 'string' &&
    isStringRecord(raw['headers']) &&
    raw['body'] instanceof Uint8Array &&
    typeof t === 'number' &&
    Number.isSafeInteger(t) &&
    t > 0 &&
    typeof raw['priceClass'] === 'string' &&
    (raw['parentId'] === undefined || isId(raw['parentId']))
  );
}

const KNOWN_RESULT = new Set(['t', 'callId', 'sandboxId', 'status', 'headers', 'body', 'execMs', 'cpuMs', 'mbMs', 'preemptMs', 'waitMs', 'error']);
const KNOWN_INVOKE = new Set(['t', 'callId', 'sandboxId', 'method', 'path', 'headers', 'body', 'timeoutMs', 'priceClass', 'parentId']);

function onlyKnown(raw: Record<string, unknown>, known: Set<string>): boolean {
  for (const k in raw) if (!known.has(k)) return false;
  return true;
}

function decodeWith<T>(schema: z.ZodType<T>, data: Uint8Array, from: string, fast?: (raw: Record<string, unknown>) => T | undefined): T {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (e) {
    throw new BatonError('protocol_error', `${from} sent a frame that is not valid msgpack`, { cause: e });
  }
  if (fast !== undefined && typeof raw === 'object' && raw !== null) {
    const ok = fast(raw as Record<string, unknown>);
    if (ok !== undefined) return ok;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : '(frame)';
    const t = typeof raw === 'object' && raw !== null && 't' in raw ? String(raw.t) : '?';
    throw new BatonError('protocol_error', `${from} sent an invalid "${t}" frame: ${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Decode and validate a frame from a worker. Throws BatonError('protocol_error'). */
export function decodeWorkerFrame(data: Uint8Array): WorkerFrame {
  return decodeWith(workerFrame, data, 'worker', (raw) => (raw['t'] === 'result' && onlyKnown(raw, KNOWN_RESULT) && fastResult(raw) ? (raw as unknown as WorkerFrame) : undefined));
}

/** Decode and validate a frame from the control plane. Throws BatonError('protocol_error'). */
export function decodeControlFrame(data: Uint8Array): ControlFrame {
  return decodeWith(controlFrame, data, 'control plane', (raw) => (raw['t'] === 'invoke' && onlyKnown(raw, KNOWN_INVOKE) && fastInvoke(raw) ? (raw as unknown as ControlFrame) : undefined));
}
