import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { monthOf } from '../policies/budget.js';
import type { PriceClassSet } from '../policies/price-classes.js';
import type { UsageRow, UsageStore } from '../storage/usage-store.js';

const BUCKET_MS = 60_000;

export interface Totals {
  invocations: number;
  cpuSeconds: number;
  gbSeconds: number;
  cost: number;
}

export interface UsageReport extends Totals {
  namespace: string;
  /** ISO times of the window. */
  from: string;
  to: string;
  byClass: Record<string, Totals>;
  byFunction: Record<string, Totals & { byClass: Record<string, Totals> }>;
}

/** Cost of one invocation: its class's price per CPU-second plus the memory price per GB-second (µ¢). */
export function priceOf(classes: PriceClassSet, memoryPrice: number, priceClass: string, cpuMs: number, mbMs: number): number {
  const p = classes.has(priceClass) ? classes.get(priceClass).price : classes.lowest.price;
  return (cpuMs / 1000) * p + (mbMs / 1024 / 1000) * memoryPrice;
}

const rowKey = (r: { bucket: number; namespace: string; function: string; priceClass: string }): string => `${r.bucket}\u0000${r.namespace}\u0000${r.function}\u0000${r.priceClass}`;

/** Add an invocation (or a batch of them) to the row of its minute, namespace, function and class. */
function addTo(rows: Map<string, UsageRow>, r: UsageRow): void {
  const key = rowKey(r);
  const row = rows.get(key);
  if (row === undefined) {
    rows.set(key, { ...r });
    return;
  }
  row.invocations += r.invocations;
  row.cpuMs += r.cpuMs;
  row.mbMs += r.mbMs;
  row.cost += r.cost;
}

/**
 * What the calls one scheduler core ran used, priced at the core, and sent to
 * the main thread's ledger in batches (`take`, every 100 ms): the core never
 * waits on SQLite or on the main thread to bill a call.
 */
export class UsageDeltas {
  private rows = new Map<string, UsageRow>();

  constructor(
    private readonly classes: PriceClassSet,
    private readonly memoryPrice: number,
  ) {}

  /** An invocation ran (now = wall-clock ms): returns its cost. */
  record(namespace: string, fn: string, priceClass: string, cpuMs: number, mbMs: number, now: number): number {
    const cost = priceOf(this.classes, this.memoryPrice, priceClass, cpuMs, mbMs);
    addTo(this.rows, { bucket: Math.floor(now / BUCKET_MS) * BUCKET_MS, namespace, function: fn, priceClass, invocations: 1, cpuMs, mbMs, cost });
    return cost;
  }

  /** The rows since the last take. */
  take(): UsageRow[] {
    if (this.rows.size === 0) return [];
    const out = [...this.rows.values()];
    this.rows = new Map();
    return out;
  }
}

function zero(): Totals {
  return { invocations: 0, cpuSeconds: 0, gbSeconds: 0, cost: 0 };
}

function add(t: Totals, r: { invocations: number; cpuMs: number; mbMs: number; cost: number }): void {
  t.invocations += r.invocations;
  t.cpuSeconds += r.cpuMs / 1000;
  t.gbSeconds += r.mbMs / 1024 / 1000;
  t.cost += r.cost;
}

/**
 * Billing (SPEC §4): every invocation that ran is priced at its class's price
 * per CPU-second plus the memory price per GB-second (the same for every
 * class), and added to per-minute usage by namespace, function and class.
 * The scheduler cores price the calls they ran and send them here every
 * 100 ms (UsageDeltas). Usage is user data: it is written to SQLite in
 * batches every `flushMs` (default 1 s, off the invocation path), so a kill -9
 * loses at most the last 1.1 s. The month's spend per namespace is kept in
 * memory for budgets.
 */
export class UsageLedger {
  private unflushed = new Map<string, UsageRow>();
  private readonly spend = new Map<string, { month: number; cost: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: UsageStore,
    private readonly classes: PriceClassSet,
    /** Price of a GB-second of memory, for every class (µ¢). */
    readonly memoryPrice: number,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly flushMs = 1000,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.flush(), this.flushMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  /** Cost of one invocation at its class. */
  price(priceClass: string, cpuMs: number, mbMs: number): number {
    return priceOf(this.classes, this.memoryPrice, priceClass, cpuMs, mbMs);
  }

  /** An invocation ran: returns its cost. */
  record(namespace: string, fn: string, priceClass: string, cpuMs: number, mbMs: number): number {
    const now = this.clock.wallNow();
    const cost = this.price(priceClass, cpuMs, mbMs);
    this.absorb([{ bucket: Math.floor(now / BUCKET_MS) * BUCKET_MS, namespace, function: fn, priceClass, invocations: 1, cpuMs, mbMs, cost }]);
    return cost;
  }

  /** Usage a scheduler core measured and priced (UsageDeltas). */
  absorb(rows: readonly UsageRow[]): void {
    const month = monthOf(this.clock.wallNow()).start;
    for (const r of rows) {
      addTo(this.unflushed, r);
      const s = this.spend.get(r.namespace);
      if (s !== undefined && s.month === month && r.bucket >= month) s.cost += r.cost;
    }
  }

  /** Write what accumulated since the last flush. */
  flush(): void {
    if (this.unflushed.size === 0) return;
    const rows = [...this.unflushed.values()];
    this.unflushed = new Map();
    try {
      this.store.add(rows);
    } catch (e) {
      // keep them for the next attempt rather than lose them
      for (const r of rows) addTo(this.unflushed, r);
      this.log.error({ err: e, rows: rows.length }, 'could not persist usage; will retry');
    }
  }

  /** What the namespace spent in the current month (stored + not yet flushed). */
  monthSpend(namespace: string): number {
    const month = monthOf(this.clock.wallNow()).start;
    const s = this.spend.get(namespace);
    if (s !== undefined && s.month === month) return s.cost;
    let cost = this.store.spentSince(namespace, month);
    for (const r of this.unflushed.values()) if (r.namespace === namespace && r.bucket >= month) cost += r.cost;
    this.spend.set(namespace, { month, cost });
    return cost;
  }

  /** Usage of a namespace in [from, to), epoch ms (to minute buckets). */
  report(namespace: string, from: number, to: number): UsageReport {
    const out: UsageReport = { namespace, from: new Date(from).toISOString(), to: new Date(to).toISOString(), ...zero(), byClass: {}, byFunction: {} };
    const bFrom = Math.floor(from / BUCKET_MS) * BUCKET_MS;
    const rows: { function: string; priceClass: string; invocations: number; cpuMs: number; mbMs: number; cost: number }[] = this.store.range(namespace, bFrom, to);
    for (const r of this.unflushed.values()) if (r.namespace === namespace && r.bucket >= bFrom && r.bucket < to) rows.push(r);
    for (const r of rows) {
      add(out, r);
      add((out.byClass[r.priceClass] ??= zero()), r);
      const f = (out.byFunction[r.function] ??= { ...zero(), byClass: {} });
      add(f, r);
      add((f.byClass[r.priceClass] ??= zero()), r);
    }
    return out;
  }
}
