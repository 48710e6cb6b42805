import { Gauge, Registry } from 'prom-client';
import { threadCpuSeconds } from '../common/thread-cpu.js';
import type { Call, InvocationResult } from '../dataplane/types.js';
import type { CoreMetricsSnapshot, MetricSeries } from '../scheduler/core-messages.js';
import { FastCounter, FastHistogram, type CounterSeries, type HistogramSeries } from './fast-metrics.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The per-call metrics: bound series updated with plain arithmetic. Each
 * scheduler core keeps its own (no registry: `snapshot()` sends them to the
 * main thread), and the main thread's are registered in its registry, where
 * `absorb` adds the cores' snapshots to its own at each scrape.
 */
export class CallMetrics {
  readonly invocations: FastCounter;
  readonly coldStarts: FastCounter;
  readonly creations: FastCounter;
  readonly ready: FastCounter;
  readonly duration: FastHistogram;
  readonly queueWait: FastHistogram;
  readonly coldLatency: FastHistogram;
  readonly schedLatency: FastHistogram;
  readonly badFrames: FastCounter;
  readonly cpuSeconds: FastCounter;
  readonly gbSeconds: FastCounter;
  readonly preemptSeconds: FastCounter;
  readonly activations: FastCounter;
  readonly throttled: FastCounter;
  readonly handedOver: FastCounter;
  private readonly all: (FastCounter | FastHistogram)[];

  constructor(registers: readonly Registry[] = []) {
    this.invocations = new FastCounter('baton_invocations_total', 'Invocations answered, by HTTP status and price class', ['status', 'class'], registers);
    this.coldStarts = new FastCounter('baton_cold_starts_total', 'Invocations that waited for a sandbox to be created', [], registers);
    this.creations = new FastCounter('baton_sandbox_creations_total', 'Sandbox creations requested from workers', [], registers);
    this.ready = new FastCounter('baton_sandbox_ready_total', 'Sandbox creations the workers confirmed ready (completed creations)', [], registers);
    this.duration = new FastHistogram('baton_invocation_duration_seconds', 'End-to-end invocation latency inside the control plane', ['class'], LATENCY_BUCKETS, registers);
    this.queueWait = new FastHistogram('baton_queue_wait_seconds', 'Time invocations waited for a free slot', ['class'], LATENCY_BUCKETS, registers);
    this.coldLatency = new FastHistogram('baton_cold_start_seconds', 'Sandbox creation time seen by cold invocations, by price class (per function: the activation records)', ['class'], LATENCY_BUCKETS, registers);
    this.schedLatency = new FastHistogram('baton_scheduling_seconds', 'Control-plane scheduling overhead per invocation', [], LATENCY_BUCKETS, registers);
    this.badFrames = new FastCounter('baton_worker_bad_frames_total', 'Frames from workers rejected by validation (connection closed)', [], registers);
    this.cpuSeconds = new FastCounter('baton_usage_cpu_seconds_total', 'CPU time of invocations as their workers measured it (time frozen by preemption excluded)', ['namespace', 'function', 'class'], registers);
    this.gbSeconds = new FastCounter('baton_usage_gb_seconds_total', 'Memory used by invocations integrated over their running time, GB-seconds', ['namespace', 'function', 'class'], registers);
    this.activations = new FastCounter('baton_activations_total', 'Invocations ended, by activation status (success, error, timeout); async calls count once, when they end', ['status'], registers);
    this.throttled = new FastCounter('baton_throttled_total', 'Calls refused because their namespace ran ahead of its monthly budget', ['namespace', 'class'], registers);
    this.preemptSeconds = new FastCounter('baton_preempted_seconds_total', 'Time invocations spent frozen by higher classes', ['class'], registers);
    this.handedOver = new FastCounter('baton_calls_handed_over_total', 'Calls that reached a scheduler core that does not own their function and were handed to the one that does', [], registers);
    this.all = [this.invocations, this.coldStarts, this.creations, this.ready, this.duration, this.queueWait, this.coldLatency, this.schedLatency, this.badFrames, this.cpuSeconds, this.gbSeconds, this.activations, this.throttled, this.preemptSeconds, this.handedOver];
  }

  /** Every series of this thread, by metric name. */
  snapshot(): Record<string, MetricSeries[]> {
    const out: Record<string, MetricSeries[]> = {};
    for (const m of this.all) out[m.name] = m.snapshot();
    return out;
  }

  /** The other threads' series (their snapshots), shown with this thread's own. */
  absorb(snapshots: readonly Record<string, MetricSeries[]>[]): void {
    for (const m of this.all) m.absorb(snapshots.map((s) => s[m.name] ?? []));
  }

  /**
   * Per-call series are bound once per label combination and kept: no label
   * object is built and hashed per call (prom-client hashes labels on every
   * labelled inc/observe otherwise).
   */
  private readonly bound = new Map<string, PerCall>();

  private seriesFor(call: Call, status: number): PerCall {
    const cls = call.req.priceClass;
    const key = `${status}\u0000${cls}\u0000${call.fn.namespace}\u0000${call.fn.name}`;
    let b = this.bound.get(key);
    if (b === undefined) {
      if (this.bound.size > 50_000) this.bound.clear();
      b = {
        invocations: this.invocations.bind(String(status), cls),
        duration: this.duration.bind(cls),
        queueWait: this.queueWait.bind(cls),
        coldLatency: this.coldLatency.bind(cls),
        cpu: this.cpuSeconds.bind(call.fn.namespace, call.fn.name, cls),
        gb: this.gbSeconds.bind(call.fn.namespace, call.fn.name, cls),
        preempt: this.preemptSeconds.bind(cls),
      };
      this.bound.set(key, b);
    }
    return b;
  }

  observe(call: Call, r: InvocationResult): void {
    const b = this.seriesFor(call, r.status);
    b.invocations.inc();
    b.duration.observe(r.timing.totalMs / 1000);
    if (r.timing.queueMs > 0) b.queueWait.observe(r.timing.queueMs / 1000);
    if (r.timing.coldMs > 0) {
      this.coldStarts.inc();
      b.coldLatency.observe(r.timing.coldMs / 1000);
    }
    this.schedLatency.observe(r.timing.schedMs / 1000);
    const u = r.usage;
    if (u !== undefined) {
      b.cpu.inc(u.cpuMs / 1000);
      b.gb.inc(u.mbMs / 1024 / 1000);
      if (u.preemptMs > 0) b.preempt.inc(u.preemptMs / 1000);
    }
  }
}

interface PerCall {
  invocations: CounterSeries;
  duration: HistogramSeries;
  queueWait: HistogramSeries;
  coldLatency: HistogramSeries;
  cpu: CounterSeries;
  gb: CounterSeries;
  preempt: CounterSeries;
}

/** What the main thread's metrics read of its workers (NodeRegistry). */
export interface NodeGaugeSource {
  all(): Iterable<{ name: string; status: string; cores: number; freeMemoryMb: number; preemptions: number }>;
}

/**
 * Prometheus metrics of one control plane (own registry, so several can live
 * in one process), served by the main thread: its own per-call series plus
 * every scheduler core's (`refresh` before a scrape), and gauges of the
 * workers, queues and sandboxes.
 */
export class ControlPlaneMetrics extends CallMetrics {
  readonly registry: Registry;
  private cores: CoreMetricsSnapshot[] = [];

  constructor(nodes: NodeGaugeSource, asyncBacklog: () => number = () => 0, classNames: () => readonly string[] = () => [], registry = new Registry()) {
    super([registry]);
    this.registry = registry;
    const registers = [registry];
    const cores = (): CoreMetricsSnapshot[] => this.cores;
    new Gauge({
      name: 'baton_process_cpu_seconds',
      help: 'CPU time this control-plane process has used, all its threads (user + system)',
      registers,
      collect() {
        const u = process.cpuUsage();
        this.set((u.user + u.system) / 1e6);
      },
    });
    new Gauge({
      name: 'baton_thread_cpu_seconds',
      help: 'CPU time each thread of the control plane has used since start (user + system): the main thread and every scheduler core',
      labelNames: ['thread'],
      registers,
      collect() {
        this.reset();
        this.set({ thread: 'main' }, threadCpuSeconds().seconds);
        cores().forEach((c, i) => this.set({ thread: `core${i}` }, c.cpuSeconds));
      },
    });
    new Gauge({
      name: 'baton_async_backlog',
      help: 'Async calls accepted and not yet ended',
      registers,
      collect() {
        this.set(asyncBacklog());
      },
    });
    new Gauge({
      name: 'baton_node_preemptions',
      help: 'Machine-scheduler preemptions each worker reported',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const n of nodes.all()) this.set({ node: n.name }, n.preemptions);
      },
    });
    new Gauge({
      name: 'baton_pending_placements',
      help: 'Functions waiting for a worker with an idle core or a lower class to preempt',
      registers,
      collect() {
        let n = 0;
        for (const c of cores()) n += c.pendingPlacements;
        this.set(n);
      },
    });
    new Gauge({
      name: 'baton_queue_depth',
      help: 'Invocations waiting for a sandbox, by their price class',
      labelNames: ['class'],
      registers,
      collect() {
        this.reset();
        const names = classNames();
        for (let r = 0; r < names.length; r++) {
          let n = 0;
          for (const c of cores()) n += c.queuedByRank[r] ?? 0;
          this.set({ class: names[r] }, n);
        }
      },
    });
    new Gauge({
      name: 'baton_sandboxes',
      help: 'Sandboxes by state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const s of ['creating', 'ready', 'draining'] as const) this.set({ state: s }, 0);
        for (const c of cores()) for (const [state, n] of Object.entries(c.sandboxesByState)) this.inc({ state }, n);
      },
    });
    new Gauge({
      name: 'baton_nodes',
      help: 'Workers by state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const s of ['ready', 'disconnected'] as const) this.set({ state: s }, 0);
        for (const n of nodes.all()) this.inc({ state: n.status });
      },
    });
    new Gauge({
      name: 'baton_node_cores',
      help: 'Cores each worker reported',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const n of nodes.all()) this.set({ node: n.name }, n.cores);
      },
    });
    new Gauge({
      name: 'baton_node_free_memory_bytes',
      help: 'Free memory each worker reported',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const n of nodes.all()) this.set({ node: n.name }, n.freeMemoryMb * 1024 * 1024);
      },
    });
  }

  /** The scheduler cores' metrics, asked for just before a scrape. */
  refresh(cores: CoreMetricsSnapshot[]): void {
    this.cores = cores;
    this.absorb(cores.map((c) => c.series));
  }
}
