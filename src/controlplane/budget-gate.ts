import type { Clock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import { budgetStatus, retryAfterSeconds, type BudgetStatus } from '../policies/budget.js';
import type { PriceClassSet } from '../policies/price-classes.js';
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
  ) {
    for (const b of store.listBudgets()) this.budgets.set(b.namespace, b.monthly);
  }

  set(namespace: string, monthly: number | null): void {
    if (monthly === null) {
      this.store.deleteBudget(namespace);
      this.budgets.delete(namespace);
      return;
    }
    if (!Number.isFinite(monthly) || monthly < 0) throw new BatonError('bad_request', `monthly: expected a non-negative amount, got ${String(monthly)}`);
    this.store.putBudget(namespace, monthly, this.clock.wallNow());
    this.budgets.set(namespace, monthly);
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
    const retry = retryAfterSeconds(s, rank);
    this.onThrottle(namespace, priceClass);
    throw new BatonError(
      'budget_exceeded',
      `namespace "${namespace}" has spent ${s.spent.toFixed(4)} of its monthly budget of ${s.monthly} — ${Math.round(s.ratio * 100)} % of the pace for this point of the month (${s.pace.toFixed(4)}); ${priceClass} calls are throttled until spending is back on pace`,
      { retryAfter: retry, details: { budget: s.monthly, spent: s.spent, pace: s.pace, priceClass } },
    );
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
