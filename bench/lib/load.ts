import { Agent, request } from 'node:http';

export interface Sample {
  ok: boolean;
  status: number;
  e2eMs: number;
  timing: Record<string, number>;
}

/** Parse `Server-Timing: a;dur=1, b;dur=2` into { a: 1, b: 2 }. */
export function parseServerTiming(header: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (header === undefined) return out;
  for (const part of header.split(',')) {
    const m = /^\s*([\w-]+);dur=([\d.]+)/.exec(part);
    if (m?.[1] !== undefined) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Keep-alive HTTP POSTs that never wait on each other (open loop). */
export class LoadClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 2048 });
  private readonly host: string;
  private readonly port: number;
  inflight = 0;

  constructor(
    base: string,
    private readonly apiKey: string,
  ) {
    const u = new URL(base);
    this.host = u.hostname;
    this.port = Number(u.port);
  }

  post(path: string, body: string, done: (s: Sample) => void): void {
    const t0 = performance.now();
    this.inflight++;
    const finish = (status: number, timing: Record<string, number>): void => {
      this.inflight--;
      done({ ok: status >= 200 && status < 300, status, e2eMs: performance.now() - t0, timing });
    };
    const req = request(
      { host: this.host, port: this.port, method: 'POST', path, agent: this.agent, headers: { authorization: `Bearer ${this.apiKey}`, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => finish(res.statusCode ?? 0, parseServerTiming(res.headers['server-timing'] as string | undefined)));
        res.on('error', () => finish(0, {}));
      },
    );
    req.on('error', () => finish(0, {}));
    req.end(body);
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Fire `fire(k)` at `rate` per second for `durationMs`, on schedule (open
 * loop): late ticks catch up instead of shifting the schedule.
 */
export function openLoop(rate: number, durationMs: number, fire: (k: number) => void, onTick?: (sent: number) => void): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now();
    const total = Math.floor((rate * durationMs) / 1000);
    let k = 0;
    const step = (): void => {
      const elapsed = performance.now() - start;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (k < due) fire(k++);
      onTick?.(k);
      if (k >= total) resolve(k);
      else setTimeout(step, Math.max(0, ((k * 1000) / rate) - (performance.now() - start)));
    };
    step();
  });
}
