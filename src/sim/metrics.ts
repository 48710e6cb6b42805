import type { Invocation } from './workload.js';

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  count: number;
}

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, p999: Number.NaN, count: 0 };
  const s = Float64Array.from(values).sort();
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
  return { p50: round(at(0.5)), p99: round(at(0.99)), p999: round(at(0.999)), count: s.length };
}

export function round(x: number, d = 3): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/**
 * What a simulation measures: per invocation waiting time, latency and
 * slowdown (latency / runtime), by class and by arrival window; per machine
 * core and memory utilisation, swapped MB and kills.
 */
export class SimMetrics {
  readonly ticks: number;
  private readonly slow: number[][][];
  private readonly lat: number[][];
  private readonly wait: number[][];
  private readonly busy: Float64Array;
  private readonly memUtil: Float64Array;
  private readonly memSamples: Uint32Array;
  private readonly swapMb: Float64Array;
  readonly swappedMbByClass: number[];
  readonly swapOutsByClass: number[];
  /** Of those, swap-outs of invocations that were running at the time. */
  readonly runningSwapOutsByClass: number[];
  readonly killedByClass: number[];
  readonly killsByMachine: Uint32Array;
  readonly peakSwapByMachine: Float64Array;
  /** Completions within the class's deadline (slowdown ≤ maxPrice / price), by class. */
  readonly metDeadline: number[];
  readonly completedByClass: number[];
  completed = 0;
  killed = 0;

  constructor(
    readonly classes: number,
    readonly tickMs: number,
    durationTicks: number,
    readonly machines: number,
    readonly coresPerMachine: number,
    /** maxPrice / price per class: the slowdown an invocation may have and still meet its deadline. */
    private readonly slack: readonly number[] = [],
  ) {
    this.metDeadline = new Array<number>(classes).fill(0);
    this.completedByClass = new Array<number>(classes).fill(0);
    // leave room for work that finishes after the last arrival
    this.ticks = durationTicks;
    this.slow = Array.from({ length: classes }, () => Array.from({ length: durationTicks }, () => []));
    this.lat = Array.from({ length: classes }, () => []);
    this.wait = Array.from({ length: classes }, () => []);
    this.busy = new Float64Array(machines * durationTicks);
    this.memUtil = new Float64Array(machines * durationTicks);
    this.memSamples = new Uint32Array(machines * durationTicks);
    this.swapMb = new Float64Array(machines * durationTicks);
    this.swappedMbByClass = new Array<number>(classes).fill(0);
    this.swapOutsByClass = new Array<number>(classes).fill(0);
    this.runningSwapOutsByClass = new Array<number>(classes).fill(0);
    this.killedByClass = new Array<number>(classes).fill(0);
    this.killsByMachine = new Uint32Array(machines);
    this.peakSwapByMachine = new Float64Array(machines);
  }

  complete(inv: Invocation, end: number): void {
    const latency = end - inv.arrival;
    const tick = Math.min(this.ticks - 1, Math.floor(inv.arrival / this.tickMs));
    const slowdown = latency / inv.runtime;
    this.slow[inv.rank]?.[tick]?.push(slowdown);
    this.completedByClass[inv.rank] = (this.completedByClass[inv.rank] ?? 0) + 1;
    if (slowdown <= (this.slack[inv.rank] ?? Infinity) * (1 + 1e-9)) this.metDeadline[inv.rank] = (this.metDeadline[inv.rank] ?? 0) + 1;
    this.lat[inv.rank]?.push(latency);
    this.wait[inv.rank]?.push(Math.max(0, latency - inv.runtime));
    this.completed++;
  }

  kill(inv: Invocation, machine: number): void {
    this.killed++;
    this.killedByClass[inv.rank] = (this.killedByClass[inv.rank] ?? 0) + 1;
    this.killsByMachine[machine] = (this.killsByMachine[machine] ?? 0) + 1;
  }

  /** `cores` cores of `machine` were busy from `from` to `to` (ms). */
  addBusy(machine: number, from: number, to: number, cores = 1): void {
    let t = from;
    while (t < to) {
      const tick = Math.floor(t / this.tickMs);
      if (tick >= this.ticks) return;
      const end = Math.min(to, (tick + 1) * this.tickMs);
      const i = machine * this.ticks + tick;
      this.busy[i] = (this.busy[i] ?? 0) + (end - t) * cores;
      t = end;
    }
  }

  sampleMemory(machine: number, now: number, util: number, swappedMb: number): void {
    const tick = Math.floor(now / this.tickMs);
    if (tick >= this.ticks) return;
    const i = machine * this.ticks + tick;
    this.memUtil[i] = (this.memUtil[i] ?? 0) + util;
    this.memSamples[i] = (this.memSamples[i] ?? 0) + 1;
    this.swapMb[i] = Math.max(this.swapMb[i] ?? 0, swappedMb);
    if (swappedMb > (this.peakSwapByMachine[machine] ?? 0)) this.peakSwapByMachine[machine] = swappedMb;
  }

  swapped(rank: number, mb: number, running: boolean): void {
    this.swappedMbByClass[rank] = (this.swappedMbByClass[rank] ?? 0) + mb;
    this.swapOutsByClass[rank] = (this.swapOutsByClass[rank] ?? 0) + 1;
    if (running) this.runningSwapOutsByClass[rank] = (this.runningSwapOutsByClass[rank] ?? 0) + 1;
  }

  /** p99 slowdown of class `rank` over arrivals in ticks [from, to). */
  slowdown(rank: number, from = 0, to = this.ticks): Percentiles {
    const all: number[] = [];
    for (let t = Math.max(0, from); t < Math.min(to, this.ticks); t++) for (const v of this.slow[rank]?.[t] ?? []) all.push(v);
    return percentiles(all);
  }

  /** Fraction of completed invocations of the class that met their deadline. */
  deadlineMet(rank: number): number {
    const n = this.completedByClass[rank] ?? 0;
    return n === 0 ? Number.NaN : round((this.metDeadline[rank] ?? 0) / n, 4);
  }

  latency(rank: number): Percentiles {
    return percentiles(this.lat[rank] ?? []);
  }

  waiting(rank: number): Percentiles {
    return percentiles(this.wait[rank] ?? []);
  }

  /** Per tick, p10/p50/p90 across machines of core utilisation (0-1). */
  utilisationSpread(): { tick: number; p10: number; p50: number; p90: number }[] {
    const out = [];
    for (let t = 0; t < this.ticks; t++) {
      const u: number[] = [];
      for (let m = 0; m < this.machines; m++) u.push((this.busy[m * this.ticks + t] ?? 0) / (this.tickMs * this.coresPerMachine));
      out.push({ tick: t, ...spread(u) });
    }
    return out;
  }

  memorySpread(): { tick: number; p10: number; p50: number; p90: number; swapP50Mb: number; swapMaxMb: number }[] {
    const out = [];
    for (let t = 0; t < this.ticks; t++) {
      const u: number[] = [];
      const sw: number[] = [];
      for (let m = 0; m < this.machines; m++) {
        const i = m * this.ticks + t;
        const n = this.memSamples[i] ?? 0;
        if (n > 0) u.push((this.memUtil[i] ?? 0) / n);
        sw.push(this.swapMb[i] ?? 0);
      }
      const s = spread(sw);
      out.push({ tick: t, ...spread(u), swapP50Mb: round(s.p50, 0), swapMaxMb: round(Math.max(0, ...sw), 0) });
    }
    return out;
  }
}

function spread(values: number[]): { p10: number; p50: number; p90: number } {
  if (values.length === 0) return { p10: 0, p50: 0, p90: 0 };
  const s = Float64Array.from(values).sort();
  const at = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
  return { p10: round(at(0.1)), p50: round(at(0.5)), p90: round(at(0.9)) };
}
