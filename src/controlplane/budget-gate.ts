import type { Clock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import { budgetStatus, retryAfterSeconds, type BudgetStatus } from '../policies/budget.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { ThrottleEntry } from '../scheduler/core-messages.js';
import type { UsageStore } from '../storage/usage-store.js';
import type { UsageLedger } from './usage-ledger.js';

export interface BudgetView {
  namespace: string;
  monthly: number | null;
  month: { start: string; end: string };
  spent: number;
  /** What the budget allows by now: the monthly amount × the share of the month gone by. */
  pace: number | null;
  /** spent / pace */
  ratio: number | null;
  /** Classes served now, and those throttled (lowest first). */
  served: string[];
  throttled: string[];
}

/**
 * Monthly budgets at admission (seeds 000/001 §3.1): each call of a namespace
 * with a budget is checked against the month's pace with the pure policy in
 * src/policies/budget.ts; when spending runs ahead, the lower classes are
 * refused first with 429 budget_exceeded and Retry-After. O(1) per call:
 * budgets are in memory, the month's spend is kept by the ledger.
 */
export class BudgetGate {
  private readonly budgets = new Map<string, number>();

  constructor(
    private readonly store: UsageStore,
    private readonly ledger: UsageLedger,
    private readonly classes: PriceClassSet,
    private readonly clock: Clock,
    private readonly onThrottle: (namespace: string, priceClass: string) => void = () => undefined,
    /** A budget was set or removed (the scheduler cores' throttle tables follow). */
    private readonly onChange: () => void = () => undefined,
  ) {
    for (const b of store.listBudgets()) this.budgets.set(b.namespace, b.monthly);
  }

  set(namespace: string, monthly: number | null): void {
    if (monthly === null) {
      this.store.deleteBudget(namespace);
      this.budgets.delete(namespace);
      this.onChange();
      return;
    }
    if (!Number.isFinite(monthly) || monthly < 0) throw new BatonError('bad_request', `monthly: expected a non-negative amount, got ${String(monthly)}`);
    this.store.putBudget(namespace, monthly, this.clock.wallNow());
    this.budgets.set(namespace, monthly);
    this.onChange();
  }

  private status(namespace: string): BudgetStatus | undefined {
    const monthly = this.budgets.get(namespace);
    if (monthly === undefined) return undefined;
    return budgetStatus(monthly, this.ledger.monthSpend(namespace), this.clock.wallNow(), this.classes.size);
  }

  /** Throw 429 budget_exceeded when this namespace's calls of this class are throttled now. */
  admit(namespace: string, priceClass: string): void {
    if (this.budgets.size === 0) return;
    const s = this.status(namespace);
    if (s === undefined) return;
    const rank = this.classes.has(priceClass) ? this.classes.get(priceClass).rank : 0;
    if (rank >= s.servedFromRank) return;
    this.onThrottle(namespace, priceClass);
    throw budgetExceeded(namespace, priceClass, s.spent, s.monthly, s.pace, s.ratio, retryAfterSeconds(s, rank));
  }

  /**
   * The namespaces throttled now, for the scheduler cores (ThrottleTable),
   * which admit calls without asking this thread: recomputed when usage
   * arrives from the cores and when a budget changes.
   */
  throttleTable(): Record<string, ThrottleEntry> {
    const out: Record<string, ThrottleEntry> = {};
    for (const ns of this.budgets.keys()) {
      const s = this.status(ns);
      if (s === undefined || s.servedFromRank === 0) continue;
      const retryAfter: number[] = [];
      for (let r = 0; r < s.servedFromRank; r++) retryAfter.push(retryAfterSeconds(s, r));
      out[ns] = { servedFromRank: s.servedFromRank, retryAfter, spent: s.spent, monthly: s.monthly, pace: s.pace, ratio: s.ratio };
    }
    return out;
  }

  view(namespace: string): BudgetView {
    const s = this.status(namespace);
    const names = this.classes.names();
    const month = s?.month ?? undefined;
    const now = this.clock.wallNow();
    const d = new Date(now);
    const start = month?.start ?? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    const end = month?.end ?? Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    return {
      namespace,
      monthly: s?.monthly ?? null,
      month: { start: new Date(start).toISOString(), end: new Date(end).toISOString() },
      spent: s?.spent ?? this.ledger.monthSpend(namespace),
      pace: s?.pace ?? null,
      ratio: s === undefined ? null : Number.isFinite(s.ratio) ? s.ratio : null,
      served: names.slice(s?.servedFromRank ?? 0),
      throttled: names.slice(0, s?.servedFromRank ?? 0),
    };
  }
}

function budgetExceeded(namespace: string, priceClass: string, spent: number, monthly: number, pace: number, ratio: number, retryAfter: number): BatonError {
  return new BatonError(
    'budget_exceeded',
    `namespace "${namespace}" has spent ${spent.toFixed(4)} of its monthly budget of ${monthly} — ${Math.round(ratio * 100)} % of the pace for this point of the month (${pace.toFixed(4)}); ${priceClass} calls are throttled until spending is back on pace`,
    { retryAfter, details: { budget: monthly, spent, pace, priceClass } },
  );
}

/**
 * A scheduler core's copy of which namespaces are throttled (BudgetGate's
 * throttleTable, pushed by the main thread): admission stays O(1) and never
 * leaves the core's thread.
 */
export class ThrottleTable {
  private table: Record<string, ThrottleEntry> = {};
  private any = false;

  constructor(
    private readonly classes: PriceClassSet,
    private readonly onThrottle: (namespace: string, priceClass: string) => void = () => undefined,
  ) {}

  set(table: Record<string, ThrottleEntry>): void {
    this.table = table;
    this.any = Object.keys(table).length > 0;
  }

  /** Throw 429 budget_exceeded when this namespace's calls of this class are throttled now. */
  admit(namespace: string, priceClass: string): void {
    if (!this.any) return;
    const e = this.table[namespace];
    if (e === undefined) return;
    const rank = this.classes.has(priceClass) ? this.classes.get(priceClass).rank : 0;
    if (rank >= e.servedFromRank) return;
    this.onThrottle(namespace, priceClass);
    throw budgetExceeded(namespace, priceClass, e.spent, e.monthly, e.pace, e.ratio, e.retryAfter[rank] ?? 60);
  }
}
