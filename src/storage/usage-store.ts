import type Database from 'better-sqlite3';

/** What one namespace's function used in one price class during one bucket (a minute). */
export interface UsageRow {
  bucket: number;
  namespace: string;
  function: string;
  priceClass: string;
  invocations: number;
  cpuMs: number;
  mbMs: number;
  cost: number;
}

export interface Budget {
  namespace: string;
  monthly: number;
  updatedAt: number;
}

/** Usage by minute and monthly budgets in SQLite: user data, written in batches off the invocation path. */
export class UsageStore {
  private readonly stmts;

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      add: db.prepare(
        `INSERT INTO usage (bucket, namespace, function, price_class, invocations, cpu_ms, mb_ms, cost)
         VALUES (@bucket, @namespace, @function, @priceClass, @invocations, @cpuMs, @mbMs, @cost)
         ON CONFLICT(namespace, bucket, function, price_class) DO UPDATE SET invocations = invocations + excluded.invocations,
           cpu_ms = cpu_ms + excluded.cpu_ms, mb_ms = mb_ms + excluded.mb_ms, cost = cost + excluded.cost`,
      ),
      range: db.prepare<[string, number, number], { function: string; price_class: string; invocations: number; cpu_ms: number; mb_ms: number; cost: number }>(
        `SELECT function, price_class, sum(invocations) AS invocations, sum(cpu_ms) AS cpu_ms, sum(mb_ms) AS mb_ms, sum(cost) AS cost
         FROM usage WHERE namespace = ? AND bucket >= ? AND bucket < ? GROUP BY function, price_class`,
      ),
      spend: db.prepare<[string, number], { cost: number | null }>('SELECT sum(cost) AS cost FROM usage WHERE namespace = ? AND bucket >= ?'),
      getBudget: db.prepare<[string], { namespace: string; monthly: number; updated_at: number }>('SELECT * FROM budgets WHERE namespace = ?'),
      putBudget: db.prepare('INSERT INTO budgets (namespace, monthly, updated_at) VALUES (?, ?, ?) ON CONFLICT(namespace) DO UPDATE SET monthly = excluded.monthly, updated_at = excluded.updated_at'),
      delBudget: db.prepare('DELETE FROM budgets WHERE namespace = ?'),
      listBudgets: db.prepare<[], { namespace: string; monthly: number; updated_at: number }>('SELECT * FROM budgets'),
    };
  }

  /** Add a batch of usage to the stored totals, in one transaction. */
  add(rows: readonly UsageRow[]): void {
    if (rows.length === 0) return;
    this.db.transaction(() => {
      for (const r of rows) this.stmts.add.run(r);
    })();
  }

  /** Totals per function and class for buckets in [from, to). */
  range(namespace: string, from: number, to: number): Omit<UsageRow, 'bucket' | 'namespace'>[] {
    return this.stmts.range.all(namespace, from, to).map((r) => ({ function: r.function, priceClass: r.price_class, invocations: r.invocations, cpuMs: r.cpu_ms, mbMs: r.mb_ms, cost: r.cost }));
  }

  /** Cost since a bucket (e.g. the month's start). */
  spentSince(namespace: string, from: number): number {
    return this.stmts.spend.get(namespace, from)?.cost ?? 0;
  }

  getBudget(namespace: string): Budget | undefined {
    const r = this.stmts.getBudget.get(namespace);
    return r === undefined ? undefined : { namespace: r.namespace, monthly: r.monthly, updatedAt: r.updated_at };
  }

  putBudget(namespace: string, monthly: number, now: number): void {
    this.stmts.putBudget.run(namespace, monthly, now);
  }

  deleteBudget(namespace: string): boolean {
    return this.stmts.delBudget.run(namespace).changes > 0;
  }

  listBudgets(): Budget[] {
    return this.stmts.listBudgets.all().map((r) => ({ namespace: r.namespace, monthly: r.monthly, updatedAt: r.updated_at }));
  }
}
