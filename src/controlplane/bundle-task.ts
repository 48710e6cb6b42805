import { move, transferableSymbol, valueSymbol } from 'piscina';
import { verifyBundle, type BundleLimits, type BundleSummary } from '../common/bundle.js';
import { BatonError, asBatonError, type WireError } from '../common/errors.js';

/**
 * Runs on a bundle-pool thread: decode an uploaded bundle, inflate it with a
 * bound, check every entry and hash it, so none of that CPU work lands on the
 * control plane's event loop. Replies are plain data: errors travel as
 * `{ code, message, details }`, and the decoded bytes are moved (not copied)
 * back to the main thread, which stores them.
 */
export interface BundleTask {
  /** The bundle as it came in the request body: base64. */
  bundle: string;
  limits: BundleLimits;
  /** A node function's handler, to look for among the files. */
  handler?: string;
}

export type BundleTaskReply = { ok: true; summary: BundleSummary; data: Uint8Array } | { ok: false; error: WireError };

// Standard and URL-safe alphabets, with the line breaks that `base64` tools insert.
const BASE64 = /^[A-Za-z0-9+/\-_\s]*={0,2}\s*$/;

export default function checkBundleTask(task: BundleTask): unknown {
  try {
    if (!BASE64.test(task.bundle)) throw new BatonError('bad_request', 'bundle: not a base64 string');
    const decoded = Buffer.from(task.bundle, 'base64');
    // A buffer of its own: small Buffers share a pool that cannot be moved across threads.
    const data = decoded.byteOffset === 0 && decoded.buffer.byteLength === decoded.length ? decoded : new Uint8Array(decoded);
    const summary = verifyBundle(data, task.limits, task.handler);
    const reply: BundleTaskReply = { ok: true, summary, data };
    return move({
      get [transferableSymbol]() {
        return data.buffer;
      },
      get [valueSymbol]() {
        return reply;
      },
    });
  } catch (e) {
    const reply: BundleTaskReply = { ok: false, error: asBatonError(e).toWire() };
    return reply;
  }
}
