import { timingSafeEqual } from 'node:crypto';
import { BatonError } from '../common/errors.js';
import { randomSecret, sha256Hex } from '../common/ids.js';
import type { ApiKeyRecord, Store } from '../storage/store.js';

export interface Principal {
  admin: boolean;
  /** The namespace this key acts in: its own, or "default" for admins. */
  namespace: string;
}

export const DEFAULT_NAMESPACE = 'default';

export function newApiKey(): string {
  return `bk_${randomSecret(24)}`;
}

/**
 * API-key authentication. Keys are stored as sha256 hashes (they are random
 * 192-bit secrets, so a fast hash is enough); known keys are cached in memory
 * so the invocation path never touches SQLite after the first request.
 */
export class Authenticator {
  private readonly cache = new Map<string, ApiKeyRecord>();

  constructor(private readonly store: Store) {}

  authenticate(authorization: string | undefined): Principal {
    if (authorization === undefined || authorization === '') {
      throw new BatonError('unauthorized', 'missing API key: send `Authorization: Bearer <key>`');
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) throw new BatonError('unauthorized', 'malformed Authorization header: expected `Bearer <key>`');
    const hash = sha256Hex(m[1] ?? '');
    let rec = this.cache.get(hash);
    if (rec === undefined) {
      rec = this.store.findApiKey(hash);
      if (rec === undefined) throw new BatonError('unauthorized', 'unknown API key');
      this.cache.set(hash, rec);
    }
    return rec.namespace === null ? { admin: true, namespace: DEFAULT_NAMESPACE } : { admin: false, namespace: rec.namespace };
  }

  /** Create and store a key; returns the plain key (shown once). */
  issue(namespace: string | null, label: string, now: number, plain = newApiKey()): string {
    const hash = sha256Hex(plain);
    if (this.store.findApiKey(hash) === undefined) this.store.addApiKey(hash, { namespace, label }, now);
    return plain;
  }
}

export function requireAdmin(p: Principal): void {
  if (!p.admin) throw new BatonError('forbidden', 'this needs the admin API key');
}

/** A namespace key may act only in its own namespace. */
export function requireNamespace(p: Principal, ns: string): void {
  if (!p.admin && p.namespace !== ns) throw new BatonError('forbidden', `this API key belongs to namespace "${p.namespace}", not "${ns}"`);
}

export function tokenMatches(presented: string, expectedHash: string): boolean {
  const a = Buffer.from(sha256Hex(presented), 'hex');
  const b = Buffer.from(expectedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
