import type Database from 'better-sqlite3';

/** An accepted async call, kept until it has run (at least once). */
export interface AsyncCallRow {
  id: string;
  namespace: string;
  function: string;
  priceClass: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
  callbackUrl?: string;
  attempts: number;
  acceptedAt: number;
}

export type ActivationStatus = 'queued' | 'running' | 'success' | 'error' | 'timeout';

/** An invocation's record (OpenWhisk-style activation); times are epoch ms. */
export interface ActivationRecord {
  id: string;
  namespace: string;
  function: string;
  priceClass: string;
  status: ActivationStatus;
  start: number;
  end: number | null;
  durationMs: number | null;
  waitMs: number;
  coldMs: number;
  preemptedMs: number;
  cpuSeconds: number;
  gbSeconds: number;
  cost: number;
  worker: string | null;
  sandbox: string | null;
  parentId: string | null;
  /** Accepted by POST /async-function (persisted) rather than run synchronously (kept in memory). */
  async: boolean;
  /** Runs so far (async calls are retried on failures before their handler ran). */
  attempts: number;
  /** HTTP status the function answered with (or the error's), once it ended. */
  statusCode: number | null;
  error?: { code: string; message: string };
}

/** The function's response, exactly as the synchronous call would have answered. */
export interface StoredResult {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

interface ActivationRow {
  record: string;
  result_status: number | null;
  result_headers: string | null;
  result_body: Buffer | null;
}

/**
 * Accepted async calls and the activation records (with results) of async
 * calls, in SQLite next to the function definitions. Writes are few and
 * batched by the caller (group commit); reads serve the activations API.
 */
export class ActivationStore {
  private readonly stmts;

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      insCall: db.prepare(
        `INSERT INTO async_calls (id, namespace, function, price_class, method, path, headers, body, callback_url, attempts, accepted_at)
         VALUES (@id, @namespace, @function, @price_class, @method, @path, @headers, @body, @callback_url, @attempts, @accepted_at)`,
      ),
      delCall: db.prepare('DELETE FROM async_calls WHERE id = ?'),
      setAttempts: db.prepare('UPDATE async_calls SET attempts = ? WHERE id = ?'),
      pending: db.prepare<[], { id: string; namespace: string; function: string; price_class: string; method: string; path: string; headers: string; body: Buffer; callback_url: string | null; attempts: number; accepted_at: number }>(
        'SELECT * FROM async_calls ORDER BY accepted_at',
      ),
      countPending: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM async_calls'),
      upsertActivation: db.prepare(
        `INSERT INTO activations (id, namespace, function, record, status, start, result_status, result_headers, result_body, expires_at)
         VALUES (@id, @namespace, @function, @record, @status, @start, @result_status, @result_headers, @result_body, @expires_at)
         ON CONFLICT(id) DO UPDATE SET record = excluded.record, status = excluded.status, result_status = excluded.result_status,
           result_headers = excluded.result_headers, result_body = excluded.result_body, expires_at = excluded.expires_at`,
      ),
      getActivation: db.prepare<[string, string], ActivationRow>('SELECT record, result_status, result_headers, result_body FROM activations WHERE namespace = ? AND id = ?'),
      listActivations: db.prepare<[string, number, number], { record: string }>('SELECT record FROM activations WHERE namespace = ? AND start >= ? ORDER BY start DESC LIMIT ?'),
      listActivationsFn: db.prepare<[string, string, number, number], { record: string }>(
        'SELECT record FROM activations WHERE namespace = ? AND function = ? AND start >= ? ORDER BY start DESC LIMIT ?',
      ),
      purge: db.prepare('DELETE FROM activations WHERE expires_at <= ? AND status NOT IN (\'queued\', \'running\')'),
    };
  }

  /** Store accepted calls with their first records, durably, in one transaction (a group commit). */
  accept(calls: readonly { call: AsyncCallRow; record: ActivationRecord; expiresAt: number }[]): void {
    this.db.transaction(() => {
      for (const { call, record, expiresAt } of calls) {
        this.stmts.insCall.run({
          id: call.id,
          namespace: call.namespace,
          function: call.function,
          price_class: call.priceClass,
          method: call.method,
          path: call.path,
          headers: JSON.stringify(call.headers),
          body: Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength),
          callback_url: call.callbackUrl ?? null,
          attempts: call.attempts,
          accepted_at: call.acceptedAt,
        });
        this.putRecord(record, undefined, expiresAt);
      }
    })();
  }

  /** Every accepted call that has not ended, oldest first (after a restart: run them again). */
  pending(): AsyncCallRow[] {
    return this.stmts.pending.all().map((r) => {
      const row: AsyncCallRow = {
        id: r.id,
        namespace: r.namespace,
        function: r.function,
        priceClass: r.price_class,
        method: r.method,
        path: r.path,
        headers: JSON.parse(r.headers) as Record<string, string>,
        body: new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength),
        attempts: r.attempts,
        acceptedAt: r.accepted_at,
      };
      if (r.callback_url !== null) row.callbackUrl = r.callback_url;
      return row;
    });
  }

  countPending(): number {
    return this.stmts.countPending.get()?.n ?? 0;
  }

  /** Record progress of a call (attempt count, running record). */
  progress(id: string, attempts: number, record: ActivationRecord, expiresAt: number): void {
    this.db.transaction(() => {
      this.stmts.setAttempts.run(attempts, id);
      this.putRecord(record, undefined, expiresAt);
    })();
  }

  /** Calls that ended for good: their final records and results replace the pending calls, all in one transaction (a group commit). */
  finish(ended: readonly { record: ActivationRecord; result: StoredResult | undefined; expiresAt: number }[]): void {
    this.db.transaction(() => {
      for (const e of ended) {
        this.stmts.delCall.run(e.record.id);
        this.putRecord(e.record, e.result, e.expiresAt);
      }
    })();
  }

  private putRecord(record: ActivationRecord, result: StoredResult | undefined, expiresAt: number): void {
    this.stmts.upsertActivation.run({
      id: record.id,
      namespace: record.namespace,
      function: record.function,
      record: JSON.stringify(record),
      status: record.status,
      start: record.start,
      result_status: result?.status ?? null,
      result_headers: result === undefined ? null : JSON.stringify(result.headers),
      result_body: result === undefined ? null : Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength),
      expires_at: expiresAt,
    });
  }

  get(namespace: string, id: string): { record: ActivationRecord; result: StoredResult | undefined } | undefined {
    const row = this.stmts.getActivation.get(namespace, id);
    if (row === undefined) return undefined;
    const result =
      row.result_status === null
        ? undefined
        : {
            status: row.result_status,
            headers: JSON.parse(row.result_headers ?? '{}') as Record<string, string>,
            body: row.result_body === null ? new Uint8Array() : new Uint8Array(row.result_body.buffer, row.result_body.byteOffset, row.result_body.byteLength),
          };
    return { record: JSON.parse(row.record) as ActivationRecord, result };
  }

  list(namespace: string, opts: { function?: string; since: number; limit: number }): ActivationRecord[] {
    const rows = opts.function === undefined ? this.stmts.listActivations.all(namespace, opts.since, opts.limit) : this.stmts.listActivationsFn.all(namespace, opts.function, opts.since, opts.limit);
    return rows.map((r) => JSON.parse(r.record) as ActivationRecord);
  }

  /** Drop ended records past their retention. Returns how many went. */
  purge(now: number): number {
    return this.stmts.purge.run(now).changes;
  }
}
