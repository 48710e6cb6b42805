import type { SandboxSpec } from '../../protocol/messages.js';
import type { Sandbox, SandboxRequest, SandboxResponse, SandboxRuntime } from '../runtime.js';

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
    const execMs = this.execMs;
    const vary = (ms: number): number => this.vary(ms);
    return {
      id,
      spec,
      pid: undefined,
      async invoke(req: SandboxRequest): Promise<SandboxResponse> {
        const ms = vary(execMs);
        if (ms > req.timeoutMs) {
          await delay(req.timeoutMs);
          return { status: 504, headers: HEADERS, body: BODY, execMs: req.timeoutMs, error: { code: 'timeout', message: `emulated execution of ${ms} ms exceeds the timeout` } };
        }
        await delay(ms);
        return { status: 200, headers: HEADERS, body: BODY, execMs: ms };
      },
      stop: () => Promise.resolve(),
      onExit: () => undefined,
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
