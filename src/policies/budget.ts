/**
 * Monthly budgets (seeds 000/001 §3.1): a budget is a guideline, not a hard
 * cap. Spending is compared with the month's pace — the budget × the share of
 * the month gone by — and when it runs ahead, the lower classes are throttled
 * first; higher classes only when the namespace is further over. Small
 * overshoot is tolerated. Pure: the caller passes the time.
 */

export interface BudgetConfig {
  /** Tolerated overshoot before anything is throttled, as a share of the pace (0.1 = 10 % ahead of pace). */
  tolerance: number;
  /** Each class above the cheapest tolerates this much more (0.25 = batch at +10 %, standard at +35 %, …). */
  stepPerClass: number;
  /**
   * Early in a month the pace is tiny; a floor (share of the monthly budget)
   * keeps the first calls of the month from being throttled.
   */
  minPaceShare: number;
}

export const DEFAULT_BUDGET_CONFIG: BudgetConfig = { tolerance: 0.1, stepPerClass: 0.25, minPaceShare: 0.02 };

export interface MonthWindow {
  /** Epoch ms of the first instant of the month (UTC). */
  start: number;
  /** Epoch ms of the first instant of the next month. */
  end: number;
}

/** The calendar month (UTC) containing `now`. */
export function monthOf(now: number): MonthWindow {
  const d = new Date(now);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const end = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return { start, end };
}

export interface BudgetStatus {
  monthly: number;
  spent: number;
  /** What the budget allows by now: monthly × elapsed share of the month (with the floor). */
  pace: number;
  /** spent / pace */
  ratio: number;
  /** Lowest class rank still served (classes below it are throttled); 0 = none throttled. */
  servedFromRank: number;
  month: MonthWindow;
}

/** Where a namespace stands against its budget at `now`, for `ranks` classes. */
export function budgetStatus(monthly: number, spent: number, now: number, ranks: number, cfg: BudgetConfig = DEFAULT_BUDGET_CONFIG): BudgetStatus {
  const month = monthOf(now);
  const elapsed = Math.min(1, Math.max(0, (now - month.start) / (month.end - month.start)));
  const pace = monthly * Math.max(elapsed, cfg.minPaceShare);
  const ratio = pace > 0 ? spent / pace : spent > 0 ? Infinity : 0;
  let servedFromRank = 0;
  for (let r = 0; r < ranks; r++) if (ratio > 1 + cfg.tolerance + r * cfg.stepPerClass) servedFromRank = r + 1;
  return { monthly, spent, pace, ratio, servedFromRank, month };
}

/**
 * Seconds until a throttled class would be served again if the namespace
 * spent nothing meanwhile: the pace grows by monthly / month-length per second.
 */
export function retryAfterSeconds(s: BudgetStatus, rank: number, cfg: BudgetConfig = DEFAULT_BUDGET_CONFIG): number {
  const threshold = 1 + cfg.tolerance + rank * cfg.stepPerClass;
  const neededPace = s.spent / threshold;
  const perMs = s.monthly / (s.month.end - s.month.start);
  if (perMs <= 0) return 3600;
  const ms = (neededPace - s.pace) / perMs;
  return Math.max(1, Math.min(Math.ceil(ms / 1000), Math.ceil((s.month.end - s.month.start) / 1000)));
}
