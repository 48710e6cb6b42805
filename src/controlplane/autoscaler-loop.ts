import type { Clock } from '../common/clock.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { FunctionRuntime } from '../dataplane/function-runtime.js';
import type { SandboxState } from '../dataplane/types.js';
import { DEFAULT_AUTOSCALER_TUNING, KpaAutoscaler, type AutoscalerConfig } from '../policies/autoscaler.js';

function configOf(fn: FunctionRuntime): AutoscalerConfig {
  const s = fn.record.spec.scale;
  return {
    ...DEFAULT_AUTOSCALER_TUNING,
    min: s.min,
    max: s.max,
    targetConcurrency: s.targetConcurrency,
    stableWindowMs: s.stableWindowMs,
    panicWindowMs: s.panicWindowMs,
    keepAliveMs: s.keepAliveMs,
  };
}

/**
 * The control loop around the pure autoscaler: every tick, feed each function's
 * average concurrency, create sandboxes up to the desired scale, and delete
 * idle ones (least recently used first) down to it.
 */
export class AutoscalerLoop {
  private readonly scalers = new WeakMap<FunctionRuntime, { version: number; kpa: KpaAutoscaler }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly clock: Clock,
    readonly tickMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  tick(): void {
    const now = this.clock.now();
    for (const fn of this.dispatcher.functions.values()) {
      const avg = fn.takeAverageConcurrency(now);
      const current = fn.scale;
      if (current === 0 && avg === 0 && fn.queued === 0 && fn.record.spec.scale.min === 0) continue;
      let s = this.scalers.get(fn);
      if (s === undefined) {
        s = { version: fn.version, kpa: new KpaAutoscaler(configOf(fn)) };
        this.scalers.set(fn, s);
      } else if (s.version !== fn.version) {
        s.kpa.reconfigure(configOf(fn));
        s.version = fn.version;
      }
      s.kpa.record(now, avg);
      const { desired } = s.kpa.decide(now, current, fn.lastActivity);
      if (desired > current) {
        for (let i = current; i < desired; i++) if (!this.dispatcher.createSandbox(fn)) break;
      } else if (desired < current && now >= fn.holdScaleDownUntil) {
        // (held after a restart: adopted sandboxes stay until the autoscaler has seen a stable window)
        this.scaleDown(fn, current - desired);
      }
    }
  }

  private scaleDown(fn: FunctionRuntime, count: number): void {
    const idle: SandboxState[] = [];
    for (const sb of fn.sandboxes) if (sb.status === 'ready' && sb.inflight === 0 && sb.record.version === fn.version) idle.push(sb);
    idle.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const sb of idle.slice(0, count)) this.dispatcher.deleteSandbox(sb);
  }
}
