import type { ActivationRecord, ActivationStore, StoredResult } from '../storage/activation-store.js';
import type { InvocationResult } from '../dataplane/types.js';

/** What a record says about the call besides its result. */
export interface CallMeta {
  id: string;
  namespace: string;
  function: string;
  priceClass: string;
  parentId?: string | undefined;
}

/** How a finished call reads as an activation status. */
export function activationStatus(r: Pick<InvocationResult, 'status' | 'error'>): ActivationRecord['status'] {
  if (r.error?.code === 'timeout') return 'timeout';
  return r.error !== undefined || r.status >= 500 ? 'error' : 'success';
}

/** The record of a finished call (sync or one attempt of an async one). */
export function recordOf(call: CallMeta, r: InvocationResult, now: number, cost: number, worker: string | null, async = false, attempts = 1): ActivationRecord {
  const u = r.usage;
  const rec: ActivationRecord = {
    id: call.id,
    namespace: call.namespace,
    function: call.function,
    priceClass: call.priceClass,
    status: activationStatus(r),
    start: Math.round(now - r.timing.totalMs),
    end: Math.round(now),
    durationMs: round3(r.timing.totalMs),
    waitMs: round3(r.timing.queueMs + r.timing.schedMs + (u?.waitMs ?? 0)),
    coldMs: round3(r.timing.coldMs),
    preemptedMs: round3(u?.preemptMs ?? 0),
    cpuSeconds: (u?.cpuMs ?? 0) / 1000,
    gbSeconds: (u?.mbMs ?? 0) / 1024 / 1000,
    cost,
    worker,
    sandbox: r.sandboxId ?? null,
    parentId: call.parentId ?? null,
    async,
    attempts,
    statusCode: r.status,
  };
  if (r.error !== undefined) rec.error = { code: r.error.code, message: r.error.message };
  return rec;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/**
 * The records of synchronous calls one scheduler core ran, in a bounded ring
 * (their results went to their callers): the core that ran a call keeps it,
 * so recording costs the invocation path no message to another thread.
 */
export class ActivationRing {
  private readonly ring: (ActivationRecord | undefined)[];
  private next = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`activation ring capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<ActivationRecord | undefined>(capacity);
  }

  add(rec: ActivationRecord): void {
    this.ring[this.next] = rec;
    this.next = (this.next + 1) % this.ring.length;
  }

  get(namespace: string, id: string): ActivationRecord | undefined {
    for (const r of this.ring) if (r !== undefined && r.id === id && r.namespace === namespace) return r;
    return undefined;
  }

  /** Newest first, at most `limit`. */
  list(namespace: string, opts: { function?: string | undefined; since: number; limit: number }): ActivationRecord[] {
    const out: ActivationRecord[] = [];
    for (const r of this.ring) if (r !== undefined && r.namespace === namespace && r.start >= opts.since && (opts.function === undefined || r.function === opts.function)) out.push(r);
    out.sort((a, b) => b.start - a.start);
    return out.slice(0, opts.limit);
  }
}

/** Where the main thread finds sync records: every scheduler core's ring. */
export interface SyncRecords {
  get(namespace: string, id: string): Promise<ActivationRecord | undefined>;
  list(namespace: string, opts: { function?: string | undefined; since: number; limit: number }): Promise<ActivationRecord[]>;
}

/**
 * Activation records (OpenWhisk-style) of every invocation: synchronous ones
 * in the scheduler cores' bounded rings, async ones persisted with their
 * results (ActivationStore) for a retention period. Live async calls are
 * asked of the async invoker first (`live`).
 */
export class ActivationLog {
  constructor(
    private readonly store: ActivationStore,
    private readonly sync: SyncRecords,
    private readonly live: (namespace: string, id: string) => { record: ActivationRecord; result: StoredResult | undefined } | undefined,
  ) {}

  async get(namespace: string, id: string): Promise<{ record: ActivationRecord; result: StoredResult | undefined } | undefined> {
    const live = this.live(namespace, id);
    if (live !== undefined) return live;
    const r = await this.sync.get(namespace, id);
    if (r !== undefined) return { record: r, result: undefined };
    return this.store.get(namespace, id);
  }

  /** Newest first: kept sync records, live and stored async records. */
  async list(namespace: string, opts: { function?: string; since: number; limit: number }, live: ActivationRecord[]): Promise<ActivationRecord[]> {
    const out: ActivationRecord[] = [];
    const seen = new Set<string>();
    const keep = (r: ActivationRecord): void => {
      if (r.namespace !== namespace || r.start < opts.since || (opts.function !== undefined && r.function !== opts.function) || seen.has(r.id)) return;
      seen.add(r.id);
      out.push(r);
    };
    for (const r of live) keep(r);
    for (const r of await this.sync.list(namespace, opts)) keep(r);
    for (const r of this.store.list(namespace, opts)) keep(r);
    out.sort((a, b) => b.start - a.start);
    return out.slice(0, opts.limit);
  }
}
