import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { bundleLimits, unpackBundle, type BundleLimits } from '../common/bundle.js';
import { BatonError } from '../common/errors.js';

const HASH_SLICE = 1024 * 1024;

/** sha256 (hex) in 1 MiB slices, letting the event loop run between them: a 50 MB bundle would otherwise hold it for ~100 ms. */
async function sha256HexYielding(data: Uint8Array): Promise<string> {
  const h = createHash('sha256');
  for (let at = 0; at < data.length; at += HASH_SLICE) {
    h.update(data.subarray(at, at + HASH_SLICE));
    if (at + HASH_SLICE < data.length) await yieldToLoop();
  }
  return h.digest('hex');
}

/**
 * Function bundles by content hash, unpacked under `<stateDir>/bundles/<hash>`.
 * A missing one is fetched from the control plane once, however many sandboxes
 * ask for it at the same time, and checked against its hash before use.
 * Unpacking inflates off the event loop and within `limits`, writes regular
 * files only, with no setuid/setgid/sticky bits and nothing writable by group
 * or others (see unpackBundle).
 */
export class BundleCache {
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly waiters = new Map<string, { resolve: (d: Uint8Array) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly dir: string,
    private readonly request: (hash: string) => boolean,
    private readonly limits: BundleLimits = bundleLimits(),
  ) {}

  /** Directory holding the unpacked bundle. */
  get(hash: string): Promise<string> {
    // The hash names a directory: anything but a sha256 could point outside the cache.
    if (!/^[0-9a-f]{64}$/.test(hash)) return Promise.reject(new BatonError('sandbox_failed', `bundle hash ${JSON.stringify(hash)} is not a sha256`));
    const target = join(this.dir, hash);
    if (existsSync(target)) return Promise.resolve(target);
    let p = this.inflight.get(hash);
    if (p === undefined) {
      p = this.fetch(hash, target).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, p);
    }
    return p;
  }

  private async fetch(hash: string, target: string): Promise<string> {
    const data = await new Promise<Uint8Array>((resolve, reject) => {
      this.waiters.set(hash, { resolve, reject });
      if (!this.request(hash)) {
        this.waiters.delete(hash);
        reject(new BatonError('sandbox_failed', 'not connected to the control plane: cannot fetch the bundle'));
      }
    });
    if ((await sha256HexYielding(data)) !== hash) throw new BatonError('sandbox_failed', `bundle ${hash} arrived corrupted (hash mismatch)`);
    try {
      await unpackBundle(data, target, this.limits);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new BatonError('sandbox_failed', `cannot unpack bundle ${hash}: ${why}`, { cause: e });
    }
    return target;
  }

  /** The control plane answered a getBundle. */
  deliver(hash: string, data: Uint8Array | undefined, error: string | undefined): void {
    const w = this.waiters.get(hash);
    if (w === undefined) return;
    this.waiters.delete(hash);
    if (data !== undefined) w.resolve(data);
    else w.reject(new BatonError('sandbox_failed', `control plane could not send bundle ${hash}: ${error ?? 'unknown error'}`));
  }

  /** The connection dropped: pending fetches fail (creations report sandboxFailed on the next connection). */
  failAll(reason: string): void {
    for (const [hash, w] of this.waiters) {
      this.waiters.delete(hash);
      w.reject(new BatonError('sandbox_failed', reason));
    }
  }
}
