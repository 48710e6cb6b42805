import type { Clock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import type { InvocationRequest, InvocationResult } from '../dataplane/types.js';
import type { FunctionRecord } from '../storage/store.js';
import { ClassQueue } from '../policies/class-queue.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { ActivationRecord, ActivationStore, AsyncCallRow, StoredResult } from '../storage/activation-store.js';
import { activationStatus, recordOf } from './activations.js';

export interface AsyncOptions {
  /** Accepted calls not yet ended; past it, new async calls get 503 with Retry-After. */
  maxPending?: number;
  /** How long records and results of async calls are kept after they end. */
  retentionMs?: number;
  /** Results larger than this are not stored (the record says so). */
  maxStoredResultBytes?: number;
  /** Async calls of one function handed to the data plane at once; the rest wait here, by class. */
  outstandingPerFunction?: number;
  /** Attempts to deliver a result to X-Callback-Url. */
  callbackAttempts?: number;
}

interface Job {
  row: AsyncCallRow;
  record: ActivationRecord;
  fnKey: string;
  /** A retry is scheduled: not queued, not running. */
  retryTimer: NodeJS.Timeout | undefined;
}

/** Where async calls run: the scheduler core that owns the function (CoreHost). */
export interface AsyncDataPlane {
  /** A function's definition, if it exists. */
  record(key: string): FunctionRecord | undefined;
  /** Run one attempt (the call keeps its id across attempts); `reply` once. */
  invoke(key: string, id: string, req: InvocationRequest, reply: (r: InvocationResult) => void): void;
}

type Accepted = { row: AsyncCallRow; record: ActivationRecord; resolve: (r: ActivationRecord) => void; reject: (e: unknown) => void };

/**
 * Async invocations (`POST /async-function/{fn}`): a call is answered 202 only
 * once it is stored durably (SQLite with synchronous=FULL; calls accepted in
 * the same turn of the event loop share one commit). Accepted calls run at
 * least once — after a control-plane crash every call not recorded as ended
 * runs again — through the same data plane as sync calls, so they are ordered
 * by class the same way. Failures before the handler ran (no worker, sandbox
 * failed to start, queue full or shed, wait limit) are retried with backoff
 * up to the function's `async.maxAttempts`; with `async.retry: errors` any
 * error is. When done, the result is stored with the activation record (for
 * the retention period) and POSTed to the caller's X-Callback-Url if any.
 */
export class AsyncInvoker {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting = new Map<string, ClassQueue<Job>>();
  private readonly outstanding = new Map<string, number>();
  private batch: Accepted[] = [];
  private flushScheduled = false;
  private pendingCount = 0;
  private readonly o: Required<AsyncOptions>;
  private stopped = false;
  /** Calls that ended and are not stored yet (see end()), by id. */
  private readonly ended = new Map<string, { record: ActivationRecord; result: StoredResult | undefined; expiresAt: number }>();
  private endFlushScheduled = false;

  constructor(
    private readonly store: ActivationStore,
    private readonly dataPlane: AsyncDataPlane,
    private readonly classes: PriceClassSet,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly hooks: {
      /** Cost of an attempt that ran, as billed. */
      cost(namespace: string, fn: string, cls: string, r: InvocationResult): number;
      worker(nodeId: string | undefined): string | null;
      /** An async call ended for good (metrics). */
      onEnd?(record: ActivationRecord): void;
    },
    opts: AsyncOptions = {},
  ) {
    this.o = {
      maxPending: opts.maxPending ?? 10_000,
      retentionMs: opts.retentionMs ?? 7 * 24 * 3600_000,
      maxStoredResultBytes: opts.maxStoredResultBytes ?? 1024 * 1024,
      outstandingPerFunction: opts.outstandingPerFunction ?? 64,
      callbackAttempts: opts.callbackAttempts ?? 3,
    };
  }

  /** Accepted calls that have not ended (the async backlog). */
  get backlog(): number {
    return this.pendingCount + this.batch.length;
  }

  /** After a (re)start: run every call accepted before that has not ended. */
  start(): number {
    const rows = this.store.pending();
    this.pendingCount = rows.length;
    for (const row of rows) {
      const record: ActivationRecord = this.queuedRecord(row);
      record.attempts = row.attempts;
      this.enqueue({ row, record, fnKey: `${row.namespace}/${row.function}`, retryTimer: undefined });
    }
    if (rows.length > 0) this.log.info({ calls: rows.length }, 'async calls accepted before the restart run again (at least once)');
    return rows.length;
  }

  stop(): void {
    this.stopped = true;
    this.storeEnded();
    for (const j of this.jobs.values()) if (j.retryTimer !== undefined) clearTimeout(j.retryTimer);
  }

  private queuedRecord(row: AsyncCallRow): ActivationRecord {
    return {
      id: row.id,
      namespace: row.namespace,
      function: row.function,
      priceClass: row.priceClass,
      status: 'queued',
      start: row.acceptedAt,
      end: null,
      durationMs: null,
      waitMs: 0,
      coldMs: 0,
      preemptedMs: 0,
      cpuSeconds: 0,
      gbSeconds: 0,
      cost: 0,
      worker: null,
      sandbox: null,
      parentId: null,
      async: true,
      attempts: 0,
      statusCode: null,
    };
  }

  /** Accept a call: resolves with its record once it is stored durably. */
  accept(fn: FunctionRecord, req: InvocationRequest, callbackUrl: string | undefined): Promise<ActivationRecord> {
    if (this.backlog >= this.o.maxPending) {
      return Promise.reject(new BatonError('overloaded', `${this.backlog} async calls are pending, the limit of this control plane; retry later`, { retryAfter: 5 }));
    }
    const row: AsyncCallRow = {
      id: newId('call'),
      namespace: fn.namespace,
      function: fn.name,
      priceClass: req.priceClass,
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: req.body,
      attempts: 0,
      acceptedAt: this.clock.wallNow(),
    };
    if (callbackUrl !== undefined) row.callbackUrl = callbackUrl;
    const record = this.queuedRecord(row);
    return new Promise((resolve, reject) => {
      this.batch.push({ row, record, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.commit());
      }
    });
  }

  /** Group commit: everything accepted in this turn is stored in one transaction, then answered. */
  private commit(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    const expiresAt = this.clock.wallNow() + this.o.retentionMs;
    try {
      this.store.accept(batch.map((b) => ({ call: b.row, record: b.record, expiresAt })));
    } catch (e) {
      this.log.error({ err: e, calls: batch.length }, 'could not store async calls');
      for (const b of batch) b.reject(new BatonError('internal', 'the call could not be stored; it was not accepted', { cause: e }));
      return;
    }
    this.pendingCount += batch.length;
    for (const b of batch) {
      b.resolve(b.record);
      this.enqueue({ row: b.row, record: b.record, fnKey: `${b.row.namespace}/${b.row.function}`, retryTimer: undefined });
    }
  }

  /** The record of a call still in flight here (queued, waiting to retry or running). */
  live(namespace: string, id: string): { record: ActivationRecord; result: StoredResult | undefined } | undefined {
    const j = this.jobs.get(id);
    if (j !== undefined) return j.row.namespace === namespace ? { record: { ...j.record }, result: undefined } : undefined;
    const e = this.ended.get(id);
    return e !== undefined && e.record.namespace === namespace ? { record: { ...e.record }, result: e.result } : undefined;
  }

  liveRecords(namespace: string): ActivationRecord[] {
    const out: ActivationRecord[] = [];
    for (const j of this.jobs.values()) if (j.row.namespace === namespace) out.push({ ...j.record });
    for (const e of this.ended.values()) if (e.record.namespace === namespace) out.push({ ...e.record });
    return out;
  }

  private enqueue(job: Job): void {
    this.jobs.set(job.row.id, job);
    let q = this.waiting.get(job.fnKey);
    if (q === undefined) {
      q = new ClassQueue<Job>(this.classes, 2 ** 30);
      this.waiting.set(job.fnKey, q);
    }
    q.push(job, this.classes.has(job.row.priceClass) ? job.row.priceClass : this.classes.lowest.name, this.clock.now());
    this.pump(job.fnKey);
  }

  /** Hand waiting calls of a function to the data plane, a bounded number at once, best price × wait first. */
  private pump(fnKey: string): void {
    const q = this.waiting.get(fnKey);
    if (q === undefined) return;
    while (!this.stopped && q.size > 0 && (this.outstanding.get(fnKey) ?? 0) < this.o.outstandingPerFunction) {
      const e = q.pop(this.clock.now());
      if (e === undefined) break;
      this.run(e.item);
    }
    if (q.size === 0) this.waiting.delete(fnKey);
  }

  private run(job: Job): void {
    const fn = this.dataPlane.record(job.fnKey);
    if (fn === undefined) {
      this.end(job, { status: 404, headers: { 'content-type': 'application/json' }, body: new TextEncoder().encode(JSON.stringify({ error: { code: 'not_found', message: `function ${job.fnKey} no longer exists` } })) }, { code: 'not_found', message: `function ${job.fnKey} no longer exists` });
      return;
    }
    this.outstanding.set(job.fnKey, (this.outstanding.get(job.fnKey) ?? 0) + 1);
    job.row.attempts++;
    job.record.attempts = job.row.attempts;
    job.record.status = 'running';
    const req: InvocationRequest = { method: job.row.method, path: job.row.path, headers: job.row.headers, body: job.row.body, priceClass: job.row.priceClass, async: true };
    this.dataPlane.invoke(job.fnKey, job.row.id, req, (r) => this.attempted(job, r));
  }

  private attempted(job: Job, r: InvocationResult): void {
    this.outstanding.set(job.fnKey, Math.max(0, (this.outstanding.get(job.fnKey) ?? 1) - 1));
    const spec = this.dataPlane.record(job.fnKey)?.spec.async;
    const maxAttempts = spec?.maxAttempts ?? 3;
    const retryAll = spec?.retry === 'errors';
    const failed = activationStatus(r) !== 'success';
    // the handler never ran: nothing reached a sandbox (no worker, start failed, shed, waited too long)
    const beforeHandler = failed && r.sandboxId === undefined;
    if (failed && (beforeHandler || retryAll) && job.row.attempts < maxAttempts && !this.stopped) {
      const delay = Math.min(30_000, 500 * 2 ** (job.row.attempts - 1)) * (0.75 + Math.random() * 0.5);
      job.record.status = 'queued';
      job.record.error = r.error === undefined ? { code: 'error', message: `attempt ${job.row.attempts} answered ${r.status}` } : { code: r.error.code, message: r.error.message };
      try {
        this.store.progress(job.row.id, job.row.attempts, job.record, this.clock.wallNow() + this.o.retentionMs);
      } catch (e) {
        this.log.warn({ err: e, callId: job.row.id }, 'could not record an async attempt');
      }
      this.log.info({ callId: job.row.id, fn: job.fnKey, attempt: job.row.attempts, retryInMs: Math.round(delay), err: r.error?.message }, 'async call failed before its handler ran; retrying');
      job.retryTimer = setTimeout(() => {
        job.retryTimer = undefined;
        const q = this.waiting.get(job.fnKey) ?? new ClassQueue<Job>(this.classes, 2 ** 30);
        this.waiting.set(job.fnKey, q);
        q.push(job, this.classes.has(job.row.priceClass) ? job.row.priceClass : this.classes.lowest.name, this.clock.now());
        this.pump(job.fnKey);
      }, delay);
      this.pump(job.fnKey);
      return;
    }
    const cost = r.sandboxId === undefined ? 0 : this.hooks.cost(job.row.namespace, job.row.function, job.row.priceClass, r);
    const meta = { id: job.row.id, namespace: job.row.namespace, function: job.row.function, priceClass: job.row.priceClass };
    const rec = recordOf(meta, r, this.clock.wallNow(), cost, this.hooks.worker(r.nodeId), true, job.row.attempts);
    rec.start = Math.min(rec.start, job.record.start);
    rec.durationMs = (rec.end ?? rec.start) - rec.start;
    job.record = rec;
    this.end(job, { status: r.status, headers: r.headers, body: r.body }, r.error);
    this.pump(job.fnKey);
  }

  private end(job: Job, result: StoredResult, error: { code: string; message: string } | undefined): void {
    this.jobs.delete(job.row.id);
    if (job.record.end === null) {
      job.record.end = this.clock.wallNow();
      job.record.durationMs = job.record.end - job.record.start;
      job.record.status = 'error';
      job.record.statusCode = result.status;
    }
    if (error !== undefined) job.record.error = { code: error.code, message: error.message };
    let stored: StoredResult | undefined = result;
    if (result.body.byteLength > this.o.maxStoredResultBytes) {
      stored = undefined;
      job.record.error ??= { code: 'result_not_stored', message: `the result of ${result.body.byteLength} bytes is larger than the ${this.o.maxStoredResultBytes} bytes kept for async calls` };
    }
    // Stored with every other call that ended in this turn, in one transaction: a
    // commit per call (an fsync each) held the event loop a third of the time at
    // 1,000 async calls/s. Until then the call stays visible through live().
    this.ended.set(job.row.id, { record: job.record, result: stored, expiresAt: this.clock.wallNow() + this.o.retentionMs });
    if (!this.endFlushScheduled) {
      this.endFlushScheduled = true;
      setImmediate(() => this.storeEnded());
    }
    this.pendingCount = Math.max(0, this.pendingCount - 1);
    this.hooks.onEnd?.(job.record);
    if (job.row.callbackUrl !== undefined) void this.callback(job.row.callbackUrl, job.record, result);
  }

  /** Group commit of the calls that ended since the last one. */
  private storeEnded(): void {
    this.endFlushScheduled = false;
    if (this.ended.size === 0) return;
    const ended = [...this.ended.values()];
    this.ended.clear();
    try {
      this.store.finish(ended);
    } catch (e) {
      this.log.error({ err: e, calls: ended.map((x) => x.record.id) }, 'could not store the end of async calls; they will run again after a restart');
    }
  }

  /** POST the result to the caller's callback URL, a few times with backoff, then give up (logged). */
  private async callback(url: string, record: ActivationRecord, result: StoredResult): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': result.headers['content-type'] ?? 'application/octet-stream',
      'x-call-id': record.id,
      'x-function-status': String(result.status),
      'x-activation-status': record.status,
    };
    for (let attempt = 1; attempt <= this.o.callbackAttempts; attempt++) {
      try {
        const res = await fetch(url, { method: 'POST', headers, body: result.body, signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        if (res.status < 500) return;
        throw new Error(`HTTP ${res.status}`);
      } catch (e) {
        if (attempt === this.o.callbackAttempts) {
          this.log.warn({ err: e, callId: record.id, url: new URL(url).origin }, 'could not deliver an async result to its callback URL; giving up');
          return;
        }
        await new Promise((r) => setTimeout(r, 1000 * 2 ** (attempt - 1)));
      }
    }
  }
}
