/**
 * Per-call metering of one sandbox. Between two events (a call starting or
 * ending, the sandbox being frozen or thawed, a memory sample) the sandbox's
 * CPU time and memory × time are shared equally by the calls running in
 * between; while it is frozen nothing accrues, so time taken away by a higher
 * class is billed neither as CPU nor as memory.
 */
export class SandboxMeter {
  private readonly active = new Map<object, { cpuUs: number; mbMs: number }>();
  private running = false;
  private lastAt: number;
  private lastCpu: number | undefined;
  private memMb = 0;

  constructor(
    private readonly clock: () => number,
    /** Cumulative CPU µs of the sandbox, or undefined when only the sandbox itself can say (see end()). */
    private readonly readCpu: () => number | undefined,
  ) {
    this.lastAt = clock();
  }

  /** Latest memory reading of the sandbox, MB. */
  sample(memMb: number): void {
    this.settle();
    this.memMb = memMb;
  }

  get memoryMb(): number {
    return this.memMb;
  }

  /** The sandbox got or lost its core. */
  setRunning(running: boolean): void {
    if (running === this.running) return;
    this.settle();
    this.running = running;
  }

  begin(call: object): void {
    this.settle();
    this.active.set(call, { cpuUs: 0, mbMs: 0 });
  }

  /** A call ended: its CPU (µs, undefined when not measured here) and memory × time (MB·ms). */
  end(call: object): { cpuUs: number | undefined; mbMs: number } {
    this.settle();
    const m = this.active.get(call);
    this.active.delete(call);
    return { cpuUs: this.lastCpu === undefined ? undefined : (m?.cpuUs ?? 0), mbMs: m?.mbMs ?? 0 };
  }

  private settle(): void {
    const now = this.clock();
    const cpu = this.active.size > 0 || this.lastCpu !== undefined ? this.readCpu() : undefined;
    const dt = now - this.lastAt;
    const dCpu = cpu === undefined || this.lastCpu === undefined ? 0 : Math.max(0, cpu - this.lastCpu);
    if (this.running && this.active.size > 0) {
      const n = this.active.size;
      for (const m of this.active.values()) {
        m.cpuUs += dCpu / n;
        m.mbMs += (this.memMb * dt) / n;
      }
    }
    this.lastAt = now;
    if (cpu !== undefined) this.lastCpu = cpu;
  }
}
