import type { Registry } from 'prom-client';
import type { MetricSeries } from '../scheduler/core-messages.js';

/**
 * Counters and histograms for the invocation path. prom-client hashes the label
 * object on every inc/observe, even through a bound child, and builds a
 * histogram's buckets the first time a label set is seen: measured in a CPU
 * profile of the churn benchmark, its observe path cost about 20 µs per cold
 * start. Here a series is bound once per label set and updated with plain
 * arithmetic; the prom-client representation is built only when /metrics is
 * scraped. The registry sees them as ordinary metrics (name, help, type, get).
 */

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

abstract class FastMetric<S extends { readonly labels: Record<string, string> }> {
  protected readonly series = new Map<string, S>();
  /**
   * Series other threads keep (the scheduler cores'), summed per label set
   * at the last `absorb`: the scrape shows this thread's own plus these.
   */
  protected remote = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registers: readonly Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected abstract make(labels: Record<string, string>): S;

  /** The series for these label values (in labelNames order), created on first use and kept. */
  bind(...values: string[]): S {
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (s === undefined) {
      if (values.length !== this.labelNames.length) throw new RangeError(`${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`);
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      s = this.make(labels);
      this.series.set(key, s);
    }
    return s;
  }

  /** Forget every series (prom-client's Registry.resetMetrics calls this). */
  reset(): void {
    this.series.clear();
  }

  /** This thread's series, to send to the thread that serves /metrics. */
  snapshot(): MetricSeries[] {
    const out: MetricSeries[] = [];
    for (const s of this.series.values()) out.push(this.toWire(this.labelNames.map((n) => s.labels[n] ?? ''), s));
    return out;
  }

  /** Replace the other threads' series with these (each thread's snapshot), summed per label set. */
  absorb(snapshots: readonly (readonly MetricSeries[])[]): void {
    const merged = new Map<string, S>();
    for (const snap of snapshots) {
      for (const w of snap) {
        const key = w.labels.join('\u0000');
        let s = merged.get(key);
        if (s === undefined) {
          const labels: Record<string, string> = {};
          this.labelNames.forEach((n, i) => (labels[n] = w.labels[i] ?? ''));
          s = this.make(labels);
          merged.set(key, s);
        }
        this.add(s, w);
      }
    }
    this.remote = merged;
  }

  /** Own and absorbed series, one per label set (own first), summed. */
  protected merged(): S[] {
    if (this.remote.size === 0) return [...this.series.values()];
    const out = new Map<string, S>();
    for (const [key, own] of this.series) {
      const r = this.remote.get(key);
      if (r === undefined) {
        out.set(key, own);
        continue;
      }
      const sum = this.make(own.labels);
      this.add(sum, this.toWire([], own));
      this.add(sum, this.toWire([], r));
      out.set(key, sum);
    }
    for (const [key, r] of this.remote) if (!out.has(key)) out.set(key, r);
    return [...out.values()];
  }

  protected abstract toWire(labels: string[], s: S): MetricSeries;
  protected abstract add(into: S, w: MetricSeries): void;
}

export class CounterSeries {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(v = 1): void {
    this.value += v;
  }
}

export class FastCounter extends FastMetric<CounterSeries> {
  readonly type = 'counter';
  private readonly unlabelled: CounterSeries | undefined;

  constructor(name: string, help: string, labelNames: readonly string[], registers: readonly Registry[]) {
    super(name, help, labelNames, registers);
    this.unlabelled = labelNames.length === 0 ? this.bind() : undefined;
  }

  protected make(labels: Record<string, string>): CounterSeries {
    return new CounterSeries(labels);
  }

  protected toWire(labels: string[], s: CounterSeries): MetricSeries {
    return { labels, value: s.value };
  }

  protected add(into: CounterSeries, w: MetricSeries): void {
    into.value += w.value ?? 0;
  }

  /** Increment the series of a counter without labels. */
  inc(v = 1): void {
    if (this.unlabelled === undefined) throw new TypeError(`${this.name} has labels: bind() its series`);
    this.unlabelled.value += v;
  }

  get(): MetricSnapshot {
    const values: MetricValue[] = [];
    for (const s of this.merged()) values.push({ labels: { ...s.labels }, value: s.value });
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' };
  }
}

export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Record<string, string>,
    private readonly upper: readonly number[],
  ) {
    this.counts = new Float64Array(upper.length);
  }

  observe(v: number): void {
    const upper = this.upper;
    // buckets are few (about 15): a linear scan beats a binary search at this size
    for (let i = 0; i < upper.length; i++) {
      if (v <= (upper[i] as number)) {
        (this.counts[i] as number)++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

export class FastHistogram extends FastMetric<HistogramSeries> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];
  private readonly unlabelled: HistogramSeries | undefined;

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registers: readonly Registry[]) {
    super(name, help, labelNames, registers);
    for (let i = 1; i < buckets.length; i++) if ((buckets[i] as number) <= (buckets[i - 1] as number)) throw new RangeError(`${name}: buckets must increase`);
    this.buckets = [...buckets];
    this.unlabelled = labelNames.length === 0 ? this.bind() : undefined;
  }

  protected make(labels: Record<string, string>): HistogramSeries {
    return new HistogramSeries(labels, this.buckets);
  }

  protected toWire(labels: string[], s: HistogramSeries): MetricSeries {
    return { labels, counts: [...s.counts], sum: s.sum, count: s.count };
  }

  protected add(into: HistogramSeries, w: MetricSeries): void {
    const counts = w.counts ?? [];
    for (let i = 0; i < into.counts.length; i++) (into.counts[i] as number) += counts[i] ?? 0;
    into.sum += w.sum ?? 0;
    into.count += w.count ?? 0;
  }

  /** Observe on a histogram without labels. */
  observe(v: number): void {
    if (this.unlabelled === undefined) throw new TypeError(`${this.name} has labels: bind() its series`);
    this.unlabelled.observe(v);
  }

  get(): MetricSnapshot {
    const values: MetricValue[] = [];
    for (const s of this.merged()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i] as number;
        values.push({ labels: { le: this.buckets[i] as number, ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
