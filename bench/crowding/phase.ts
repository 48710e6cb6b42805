import { openLoop, type LoadClient, type Sample } from '../lib/load.js';
import type { CallRecord } from './analysis.js';
import { CrowdingError } from './crowding-error.js';

/** Turn what the client saw into a call record (the function's own measurements come in the body). */
export function toRecord(s: Sample, sentAt: number, dueAt?: number): CallRecord {
  const r: CallRecord = { sentAt, doneAt: sentAt + s.e2eMs, ok: s.ok, status: s.status, timing: s.timing };
  if (dueAt !== undefined) r.dueAt = dueAt;
  let parsed: unknown;
  try {
    parsed = s.body === undefined || s.body === '' ? undefined : JSON.parse(s.body);
  } catch {
    parsed = undefined;
  }
  if (s.ok) {
    const p = parsed as { cpuMs?: unknown; wallMs?: unknown } | undefined;
    if (typeof p?.cpuMs === 'number' && typeof p.wallMs === 'number') r.spin = { cpuMs: p.cpuMs, wallMs: p.wallMs };
  } else {
    const code = (parsed as { error?: { code?: unknown } } | undefined)?.error?.code;
    r.error = typeof code === 'string' ? code : (s.error ?? 'no error code');
  }
  return r;
}

/**
 * Closed-loop batch clients: each keeps one call outstanding, sending the
 * next as soon as the last one answers (after a short pause when it failed,
 * so a broken cluster is not hammered).
 */
export class BatchFlood {
  readonly records: CallRecord[] = [];
  private running = false;
  private outstanding = 0;

  constructor(
    private readonly client: LoadClient,
    private readonly functions: readonly string[],
    private readonly inflight: number,
  ) {}

  start(): void {
    this.running = true;
    for (let i = 0; i < this.inflight; i++) this.loop(this.functions[i % this.functions.length] as string);
  }

  private loop(fn: string): void {
    if (!this.running) return;
    const sentAt = performance.now();
    this.outstanding++;
    this.client.post(
      `/function/${fn}`,
      '',
      (s) => {
        this.outstanding--;
        const r = toRecord(s, sentAt);
        this.records.push(r);
        if (r.ok) this.loop(fn);
        else setTimeout(() => this.loop(fn), 100);
      },
      { keepBody: true, timeoutMs: 120_000 },
    );
  }

  /** Stop sending and wait for the outstanding calls to answer. */
  async stop(timeoutMs: number): Promise<void> {
    this.running = false;
    const deadline = performance.now() + timeoutMs;
    while (this.outstanding > 0) {
      if (performance.now() > deadline) throw new CrowdingError(`${this.outstanding} batch calls still unanswered ${timeoutMs / 1000} s after the flood stopped`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * Critical calls at a steady rate (open loop: a late tick sends at once
 * rather than shifting the schedule) for `durationMs`. Resolves once every
 * call has answered or failed; rejects if `failure()` names a reason to stop.
 */
export async function criticalLoad(
  client: LoadClient,
  fn: string,
  rate: number,
  durationMs: number,
  timeoutMs: number,
  failure: () => string | undefined,
  onProgress?: (records: readonly CallRecord[]) => void,
): Promise<{ start: number; records: CallRecord[] }> {
  const records: CallRecord[] = [];
  let pending = 0;
  const start = performance.now();
  let lastTick = start;
  await openLoop(
    rate,
    durationMs,
    (k) => {
      const dueAt = start + (k * 1000) / rate;
      const sentAt = performance.now();
      pending++;
      client.post(
        `/function/${fn}`,
        '',
        (s) => {
          pending--;
          records.push(toRecord(s, sentAt, dueAt));
        },
        { keepBody: true, timeoutMs },
      );
    },
    () => {
      if (failure() !== undefined) return false;
      const now = performance.now();
      if (now - lastTick >= 1000) {
        lastTick = now;
        onProgress?.(records);
      }
      return true;
    },
  );
  const why = failure();
  if (why !== undefined) throw new CrowdingError(why);
  const deadline = performance.now() + timeoutMs + 5000;
  while (pending > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (pending > 0) throw new CrowdingError(`${pending} critical calls neither answered nor timed out; the client is stuck`);
  return { start, records };
}

