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

function decodeWith<T>(schema: z.ZodType<T>, data: Uint8Array, from: string): T {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (e) {
    throw new BatonError('protocol_error', `${from} sent a frame that is not valid msgpack`, { cause: e });
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
  return decodeWith(workerFrame, data, 'worker');
}

/** Decode and validate a frame from the control plane. Throws BatonError('protocol_error'). */
export function decodeControlFrame(data: Uint8Array): ControlFrame {
  return decodeWith(controlFrame, data, 'control plane');
}
