import { timingSafeEqual } from 'node:crypto';
import { BatonError } from '../common/errors.js';
import { randomSecret, sha256Hex } from '../common/ids.js';
import type { Store } from '../storage/store.js';

export interface Principal {
  admin: boolean;
  /** The namespace this key acts in: its own, or "default" for admins. */
  namespace: string;
}

export const DEFAULT_NAMESPACE = 'default';

export function newApiKey(): string {
  return `bk_${randomSecret(24)}`;
}

/** Bound on each of the caches below: a flood of distinct keys can only churn them. */
const CACHE_MAX = 10_000;

/**
 * API-key authentication. Keys are stored as sha256 hashes (they are random
 * 192-bit secrets, so a fast hash is enough). On the invocation path nothing
 * is hashed or looked up in SQLite after a key's first use: the whole
 * `Authorization` value of a verified key maps to its principal, and unknown
 * keys are remembered too (negative cache), so a client retrying a wrong key
 * costs a map lookup. Both caches are bounded.
 */
export class Authenticator {
  private readonly known = new Map<string, Principal>();
  private readonly unknown = new Set<string>();

  constructor(
    private readonly store: Pick<Store, 'findApiKey' | 'addApiKey'>,
    /** A key was issued (other threads' negative caches must forget it). */
    private readonly onIssue: () => void = () => undefined,
  ) {}

  /** Forget the keys found unknown: one may have been issued since (by another thread). */
  forgetUnknown(): void {
    this.unknown.clear();
  }

  authenticate(authorization: string | undefined): Principal {
    if (authorization === undefined || authorization === '') {
      throw new BatonError('unauthorized', 'missing API key: send `Authorization: Bearer <key>`');
    }
    const hit = this.known.get(authorization);
    if (hit !== undefined) return hit;
    if (this.unknown.has(authorization)) throw new BatonError('unauthorized', 'unknown API key');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) throw new BatonError('unauthorized', 'malformed Authorization header: expected `Bearer <key>`');
    const rec = this.store.findApiKey(sha256Hex(m[1] ?? ''));
    if (rec === undefined) {
      remember(this.unknown, authorization);
      throw new BatonError('unauthorized', 'unknown API key');
    }
    const p: Principal = rec.namespace === null ? { admin: true, namespace: DEFAULT_NAMESPACE } : { admin: false, namespace: rec.namespace };
    if (this.known.size >= CACHE_MAX) this.known.delete(this.known.keys().next().value as string);
    this.known.set(authorization, p);
    return p;
  }

  /** Create and store a key; returns the plain key (shown once). */
  issue(namespace: string | null, label: string, now: number, plain = newApiKey()): string {
    const hash = sha256Hex(plain);
    if (this.store.findApiKey(hash) === undefined) this.store.addApiKey(hash, { namespace, label }, now);
    // a key refused before it existed is good now
    for (const k of this.unknown) if (k.includes(plain)) this.unknown.delete(k);
    this.onIssue();
    return plain;
  }
}

function remember(set: Set<string>, value: string): void {
  if (value.length > 512) return;
  if (set.size >= CACHE_MAX) set.delete(set.values().next().value as string);
  set.add(value);
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
