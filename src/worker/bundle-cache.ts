import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { unpackBundle } from '../common/bundle.js';
import { BatonError } from '../common/errors.js';
import { sha256Hex } from '../common/ids.js';

/**
 * Function bundles by content hash, unpacked under `<stateDir>/bundles/<hash>`.
 * A missing one is fetched from the control plane once, however many sandboxes
 * ask for it at the same time, and checked against its hash before use.
 */
export class BundleCache {
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly waiters = new Map<string, { resolve: (d: Uint8Array) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly dir: string,
    private readonly request: (hash: string) => boolean,
  ) {}

  /** Directory holding the unpacked bundle. */
  get(hash: string): Promise<string> {
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
    if (sha256Hex(data) !== hash) throw new BatonError('sandbox_failed', `bundle ${hash} arrived corrupted (hash mismatch)`);
    await unpackBundle(data, target);
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
