import { randomBytes, createHash } from 'node:crypto';

let counter = 0;
const prefix = randomBytes(4).toString('hex');

/** Short, unique, sortable-enough id for calls and sandboxes. Cheap: no crypto per call. */
export function newId(kind: string): string {
  counter = (counter + 1) >>> 0;
  return `${kind}-${prefix}${Date.now().toString(36)}${counter.toString(36)}`;
}

export function randomSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
