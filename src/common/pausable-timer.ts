/**
 * A one-shot timer that can be paused and resumed: a sandbox's call deadline
 * stops counting while the machine scheduler has the sandbox frozen, so time
 * taken away from a call never counts against its timeout.
 */
export class PausableTimer {
  private handle: NodeJS.Timeout | undefined;
  private remaining: number;
  private startedAt = 0;
  private done = false;

  constructor(
    ms: number,
    private readonly fire: () => void,
  ) {
    this.remaining = ms;
    this.resume();
  }

  pause(): void {
    if (this.handle === undefined || this.done) return;
    clearTimeout(this.handle);
    this.handle = undefined;
    this.remaining = Math.max(0, this.remaining - (performance.now() - this.startedAt));
  }

  resume(): void {
    if (this.handle !== undefined || this.done) return;
    this.startedAt = performance.now();
    this.handle = setTimeout(() => {
      this.done = true;
      this.handle = undefined;
      this.fire();
    }, this.remaining);
  }

  clear(): void {
    this.done = true;
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
  }
}
