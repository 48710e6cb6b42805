/**
 * Knative-KPA-style autoscaler, pure. The caller feeds it, once per tick, the
 * average concurrency (in-flight plus queued) the function saw during that
 * tick, and asks for the desired number of sandboxes. No clock reads: time is
 * passed in.
 *
 * - stable average over `stableWindowMs`, panic average over `panicWindowMs`,
 *   each divided by the per-sandbox target and rounded up;
 * - panic mode when the panic desire reaches `panicThreshold` × current scale;
 *   it lasts at least one stable window and never scales down;
 * - scale-up and scale-down rates are clamped relative to the current scale;
 * - the last sandbox goes only after `keepAliveMs` without any activity
 *   (scale to zero), and the result is clamped to [min, max].
 *
 * `current` must include pending creations, so a burst does not create a
 * sandbox per tick while the first ones are still starting.
 */
export interface AutoscalerConfig {
  min: number;
  max: number;
  targetConcurrency: number;
  stableWindowMs: number;
  panicWindowMs: number;
  keepAliveMs: number;
  panicThreshold: number;
  maxScaleUpRate: number;
  maxScaleDownRate: number;
}

export const DEFAULT_AUTOSCALER_TUNING = { panicThreshold: 2, maxScaleUpRate: 1000, maxScaleDownRate: 2 } as const;

export interface AutoscalerDecision {
  desired: number;
  panic: boolean;
  stableAverage: number;
  panicAverage: number;
}

export class KpaAutoscaler {
  /**
   * The samples of the last window, oldest first: when each was taken, and
   * its concurrency, in two arrays of numbers (V8 stores them unboxed, 8 B
   * each). An object per sample cost about 85 B: 5 KB of control-plane heap
   * per active function at one sample a second over a 60 s window.
   */
  private readonly sampledAt: number[] = [];
  private readonly sampled: number[] = [];
  private panicUntil = -Infinity;

  constructor(private config: AutoscalerConfig) {}

  reconfigure(config: AutoscalerConfig): void {
    this.config = config;
  }

  /** Record the average concurrency observed over the tick ending at `now`. */
  record(now: number, concurrency: number): void {
    this.sampledAt.push(now);
    this.sampled.push(concurrency);
    const horizon = now - Math.max(this.config.stableWindowMs, this.config.panicWindowMs);
    let drop = 0;
    while (drop < this.sampledAt.length && (this.sampledAt[drop] ?? 0) <= horizon) drop++;
    if (drop > 0) {
      this.sampledAt.splice(0, drop);
      this.sampled.splice(0, drop);
    }
  }

  private average(now: number, windowMs: number): number {
    let sum = 0;
    let n = 0;
    for (let i = this.sampledAt.length - 1; i >= 0; i--) {
      const at = this.sampledAt[i];
      if (at === undefined || at <= now - windowMs) break;
      sum += this.sampled[i] ?? 0;
      n++;
    }
    return n === 0 ? 0 : sum / n;
  }

  /**
   * @param current sandboxes that exist or are being created (ready + pending)
   * @param lastActivity time of the last arrival or completion
   */
  decide(now: number, current: number, lastActivity: number): AutoscalerDecision {
    const c = this.config;
    const stableAverage = this.average(now, c.stableWindowMs);
    const panicAverage = this.average(now, c.panicWindowMs);
    const stableDesired = Math.ceil(stableAverage / c.targetConcurrency - 1e-9);
    const panicDesired = Math.ceil(panicAverage / c.targetConcurrency - 1e-9);

    if (panicDesired >= c.panicThreshold * Math.max(current, 1) && panicDesired > current) {
      this.panicUntil = now + c.stableWindowMs;
    }
    const panic = now < this.panicUntil;
    let desired = panic ? Math.max(current, panicDesired, stableDesired) : stableDesired;

    const upLimit = Math.ceil(c.maxScaleUpRate * Math.max(current, 1));
    const downLimit = Math.floor(current / c.maxScaleDownRate);
    desired = Math.min(desired, upLimit);
    desired = Math.max(desired, downLimit);
    if (desired === 0 && current > 0 && now - lastActivity < c.keepAliveMs) desired = 1;
    desired = Math.max(c.min, Math.min(c.max, desired));
    return { desired, panic, stableAverage, panicAverage };
  }
}
