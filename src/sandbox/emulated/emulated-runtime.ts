import { PausableTimer } from '../../common/pausable-timer.js';
import type { SandboxSpec } from '../../protocol/messages.js';
import { NO_CONTROL, type Sandbox, type SandboxControl, type SandboxRequest, type SandboxResponse, type SandboxRuntime } from '../runtime.js';

export interface EmulatedOptions {
  /** Creation latency in ms. */
  createMs?: number;
  /** Execution time per invocation in ms. */
  execMs?: number;
  /** Uniform jitter added to both, as a fraction (0.1 = ±10 %). */
  jitter?: number;
}

const BODY = new TextEncoder().encode('emulated');
const HEADERS = Object.freeze({ 'content-type': 'text/plain', 'x-baton-emulated': '1' }) as Record<string, string>;

function delay(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms));
}

/** A sandbox that is only a record: its "execution" is a timer, which freezing pauses like a real process. */
class EmulatedSandbox implements Sandbox {
  readonly pid = undefined;
  readonly control: SandboxControl = NO_CONTROL;
  private readonly timers = new Set<PausableTimer>();
  private frozen = false;

  constructor(
    readonly id: string,
    readonly spec: SandboxSpec,
    private readonly execMs: () => number,
  ) {}

  invoke(req: SandboxRequest): Promise<SandboxResponse> {
    const ms = this.execMs();
    const run = Math.min(ms, req.timeoutMs);
    return new Promise((resolve) => {
      const held: { timer?: PausableTimer } = {};
      const answer = (): void => {
        if (held.timer !== undefined) this.timers.delete(held.timer);
        if (ms > req.timeoutMs) resolve({ status: 504, headers: HEADERS, body: BODY, execMs: req.timeoutMs, error: { code: 'timeout', message: `emulated execution of ${ms} ms exceeds the timeout` } });
        else resolve({ status: 200, headers: HEADERS, body: BODY, execMs: ms });
      };
      if (run <= 0 && !this.frozen) {
        // answered in the same turn: the warm-path benchmarks measure the control plane, not timers
        queueMicrotask(answer);
        return;
      }
      const timer = new PausableTimer(run, answer);
      held.timer = timer;
      this.timers.add(timer);
      if (this.frozen) timer.pause();
    });
  }

  freeze(): void {
    this.frozen = true;
    for (const t of this.timers) t.pause();
  }

  thaw(): void {
    this.frozen = false;
    for (const t of this.timers) t.resume();
  }

  stop(): Promise<void> {
    for (const t of this.timers) t.clear();
    this.timers.clear();
    return Promise.resolve();
  }

  onExit(): void {
    // records never die on their own
  }
}

/**
 * Sandboxes that exist only as records, for scale tests of the control plane
 * (like Dirigent's fake workers or Kwok). Every response is marked
 * `x-baton-emulated: 1`.
 */
export class EmulatedRuntime implements SandboxRuntime {
  readonly name = 'emulated';
  private readonly createMs: number;
  private readonly execMs: number;
  private readonly jitter: number;

  constructor(opts: EmulatedOptions = {}) {
    this.createMs = opts.createMs ?? 0;
    this.execMs = opts.execMs ?? 0;
    this.jitter = opts.jitter ?? 0;
    for (const [k, v] of Object.entries({ createMs: this.createMs, execMs: this.execMs, jitter: this.jitter })) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`emulated.${k} must be a non-negative number, got ${v}`);
    }
  }

  private vary(ms: number): number {
    return this.jitter === 0 ? ms : ms * (1 + (Math.random() * 2 - 1) * this.jitter);
  }

  async create(id: string, spec: SandboxSpec): Promise<Sandbox> {
    await delay(this.vary(this.createMs));
    return new EmulatedSandbox(id, spec, () => this.vary(this.execMs));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
