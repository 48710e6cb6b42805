import { percentile, round } from '../lib/stats.js';

/**
 * The pure half of the crowding benchmark: what happened to each call, cut
 * into phase windows, summarised and turned into plot data. No I/O, no clock.
 * Times are milliseconds on one monotonic clock (the load generator's
 * performance.now()).
 */

/** One call as the load generator saw it. */
export interface CallRecord {
  /** When the request was sent. */
  sentAt: number;
  /** When the response (or the failure) came back. */
  doneAt: number;
  /** For open-loop calls: when the schedule wanted it sent (sentAt - dueAt is the generator's own lag). */
  dueAt?: number;
  ok: boolean;
  /** HTTP status; 0 when no response came. */
  status: number;
  /** For failures: the error code from the body, or the client's reason. */
  error?: string;
  /** The Server-Timing entries of the response. */
  timing: Record<string, number>;
  /** What the function measured around its own spin: CPU used and wall time taken, ms. */
  spin?: { cpuMs: number; wallMs: number };
}

/** A measured window [start, end). */
export interface Span {
  start: number;
  end: number;
}

/** The calls sent during one measured window (a phase is one window, or several interleaved with other phases). */
export interface WindowCalls {
  span: Span;
  records: readonly CallRecord[];
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

export interface CriticalSummary {
  /** Sent inside the window. */
  sent: number;
  /** Completed (successfully or not) inside the window: what the percentiles cover. */
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Sent inside the window but completed after it (not in the percentiles). */
  late: number;
  /** End to end, send to response, over every call completed in the window, failures at their time to failure. */
  e2eMs: Percentiles;
  /** Time the critical handler was off the CPU during its own spin (wall - CPU): frozen, or waiting for a core. */
  offCpuMs: { p50: number; p99: number };
  /** How late the open-loop generator sent calls (its own stalls). */
  sendLagMs: { p50: number; p99: number; max: number };
  /** Calls whose Server-Timing reported time preempted. */
  preemptedCalls: number;
  /** Where the time went, from Server-Timing and the handler's own report: p50 and p99 of each part, and the mean of each over the slowest 1 %. */
  breakdown: Breakdown;
}

/**
 * Parts of a call's end-to-end time: `outside` the control plane (client,
 * loopback, HTTP parsing before the control plane stamps arrival),
 * `controlPlane` (queue, scheduling, cold start), `transit` (control plane to
 * worker and runner and back, including the worker's wait for a core and any
 * freezing or pinning), `exec` (the handler, in its runner) and, within exec,
 * `offCpu` (the handler waiting for the CPU).
 */
export const PARTS = ['outside', 'controlPlane', 'transit', 'exec', 'offCpu'] as const;
export type Part = (typeof PARTS)[number];
export interface Breakdown {
  p50: Record<Part, number>;
  p99: Record<Part, number>;
  slowest: { calls: number; e2eMs: number; meanMs: Record<Part, number> };
}

/** The parts of one call, or undefined when it carried no Server-Timing (a failure, or an old control plane). */
export function partsOf(r: CallRecord): Record<Part, number> | undefined {
  const t = r.timing;
  if (t['total'] === undefined || t['exec'] === undefined) return undefined;
  const cp = (t['queue'] ?? 0) + (t['sched'] ?? 0) + (t['cold'] ?? 0);
  return {
    outside: Math.max(0, r.doneAt - r.sentAt - t['total']),
    controlPlane: cp,
    transit: Math.max(0, t['total'] - cp - t['exec']),
    exec: t['exec'],
    offCpu: offCpu(r) ?? 0,
  };
}

function breakdown(done: readonly CallRecord[]): Breakdown {
  const withParts = done.map((r) => ({ e2e: r.doneAt - r.sentAt, parts: partsOf(r) })).filter((x): x is { e2e: number; parts: Record<Part, number> } => x.parts !== undefined);
  const per = (p: number): Record<Part, number> => Object.fromEntries(PARTS.map((k) => [k, round(percentile(withParts.map((x) => x.parts[k]), p))])) as Record<Part, number>;
  const cut = percentile(withParts.map((x) => x.e2e), 99);
  const slow = withParts.filter((x) => x.e2e >= cut);
  const mean = (k: Part): number => round(slow.reduce((s, x) => s + x.parts[k], 0) / Math.max(1, slow.length));
  return {
    p50: per(50),
    p99: per(99),
    slowest: { calls: slow.length, e2eMs: round(slow.reduce((s, x) => s + x.e2e, 0) / Math.max(1, slow.length)), meanMs: Object.fromEntries(PARTS.map((k) => [k, mean(k)])) as Record<Part, number> },
  };
}

export interface BatchSummary {
  completed: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Successful batch calls completed per second of window. */
  throughputPerSec: number;
  e2eMs: { p50: number; p99: number };
  /** Batch handlers' time off the CPU during their spins (frozen or sharing cores), summed, ms. */
  offCpuMsTotal: number;
  /** Batch handlers' CPU during their spins, summed, ms. */
  cpuMsTotal: number;
  /** Calls whose Server-Timing reported time preempted, and that time summed. */
  preemptedCalls: number;
  preemptMsTotal: number;
}

function pcts(values: readonly number[]): Percentiles {
  return { p50: round(percentile(values, 50)), p99: round(percentile(values, 99)), p999: round(percentile(values, 99.9)), max: round(percentile(values, 100)) };
}

function kinds(records: readonly CallRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) {
    if (r.ok) continue;
    const k = `${r.status} ${r.error ?? 'unknown'}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Calls that completed inside their window. */
export function completedIn(windows: readonly WindowCalls[]): CallRecord[] {
  return windows.flatMap((w) => w.records.filter((r) => r.doneAt >= w.span.start && r.doneAt < w.span.end));
}

function sentIn(windows: readonly WindowCalls[]): CallRecord[] {
  return windows.flatMap((w) => w.records.filter((r) => r.sentAt >= w.span.start && r.sentAt < w.span.end));
}

function seconds(windows: readonly WindowCalls[]): number {
  return windows.reduce((s, w) => s + (w.span.end - w.span.start) / 1000, 0);
}

function offCpu(r: CallRecord): number | undefined {
  return r.spin === undefined ? undefined : Math.max(0, r.spin.wallMs - r.spin.cpuMs);
}

export function summarizeCritical(windows: readonly WindowCalls[]): CriticalSummary {
  const done = completedIn(windows);
  const sent = sentIn(windows);
  const off = done.map(offCpu).filter((v): v is number => v !== undefined);
  const lag = sent.filter((r) => r.dueAt !== undefined).map((r) => r.sentAt - (r.dueAt as number));
  return {
    sent: sent.length,
    completed: done.length,
    errors: done.filter((r) => !r.ok).length,
    errorKinds: kinds(done),
    late: windows.reduce((n, w) => n + w.records.filter((r) => r.sentAt >= w.span.start && r.sentAt < w.span.end && r.doneAt >= w.span.end).length, 0),
    e2eMs: pcts(done.map((r) => r.doneAt - r.sentAt)),
    offCpuMs: { p50: round(percentile(off, 50)), p99: round(percentile(off, 99)) },
    sendLagMs: { p50: round(percentile(lag, 50)), p99: round(percentile(lag, 99)), max: round(percentile(lag, 100)) },
    preemptedCalls: done.filter((r) => (r.timing['preempt'] ?? 0) > 0).length,
    breakdown: breakdown(done),
  };
}

export function summarizeBatch(windows: readonly WindowCalls[]): BatchSummary {
  const done = completedIn(windows);
  const ok = done.filter((r) => r.ok);
  const secs = seconds(windows);
  let offTotal = 0;
  let cpuTotal = 0;
  let preemptMs = 0;
  let preempted = 0;
  for (const r of done) {
    offTotal += offCpu(r) ?? 0;
    cpuTotal += r.spin?.cpuMs ?? 0;
    const p = r.timing['preempt'] ?? 0;
    if (p > 0) {
      preempted++;
      preemptMs += p;
    }
  }
  const e2e = done.map((r) => r.doneAt - r.sentAt);
  return {
    completed: done.length,
    ok: ok.length,
    errors: done.length - ok.length,
    errorKinds: kinds(done),
    throughputPerSec: secs > 0 ? round(ok.length / secs, 1) : Number.NaN,
    e2eMs: { p50: round(percentile(e2e, 50)), p99: round(percentile(e2e, 99)) },
    offCpuMsTotal: round(offTotal, 0),
    cpuMsTotal: round(cpuTotal, 0),
    preemptedCalls: preempted,
    preemptMsTotal: round(preemptMs, 1),
  };
}

/** Latency of the calls sent in each bin of a window: x is seconds from the window's start plus `offsetS`. */
export interface LatencyBin {
  x: number;
  n: number;
  p50: number;
  max: number;
}

export function latencyBins(w: WindowCalls, binMs: number, offsetS: number): LatencyBin[] {
  if (!(binMs > 0)) throw new RangeError(`binMs must be positive, got ${binMs}`);
  const { start, end } = w.span;
  const count = Math.max(1, Math.ceil((end - start) / binMs));
  const bins: number[][] = Array.from({ length: count }, () => []);
  for (const r of w.records) {
    if (r.sentAt < start || r.sentAt >= end || r.doneAt >= end) continue;
    (bins[Math.floor((r.sentAt - start) / binMs)] as number[]).push(r.doneAt - r.sentAt);
  }
  const out: LatencyBin[] = [];
  bins.forEach((v, i) => {
    if (v.length === 0) return;
    out.push({ x: round(offsetS + (Math.min(end - start, (i + 0.5) * binMs)) / 1000, 3), n: v.length, p50: round(percentile(v, 50)), max: round(percentile(v, 100)) });
  });
  return out;
}

export interface PhaseP99 {
  name: string;
  flood: boolean;
  classes: boolean;
  p99: number;
}

/** Flood p99 over alone p99: each flood phase against the alone phase measured with the same setting, else the first alone phase. */
export function p99Ratios(phases: readonly PhaseP99[]): { phase: string; baseline: string; ratio: number }[] {
  const out: { phase: string; baseline: string; ratio: number }[] = [];
  for (const p of phases) {
    if (!p.flood) continue;
    const alone = phases.find((q) => !q.flood && q.classes === p.classes) ?? phases.find((q) => !q.flood);
    if (alone === undefined) continue;
    out.push({ phase: p.name, baseline: alone.name, ratio: round(p.p99 / alone.p99) });
  }
  return out;
}

/** A right-aligned text table in Markdown form. */
export function textTable(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (c: readonly string[]): string => `| ${c.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...cells.map(line)].join('\n');
}
