import { Agent, request } from 'node:http';

export interface Sample {
  ok: boolean;
  /** HTTP status, 0 when no response came (connection error, client timeout). */
  status: number;
  e2eMs: number;
  timing: Record<string, number>;
  /** The response body, when the call asked to keep it. */
  body?: string;
  /** Why no response came (client side), when status is 0. */
  error?: string;
}

export interface PostOptions {
  headers?: Record<string, string>;
  /** Give up after this long: the call fails with status 0 at that time. */
  timeoutMs?: number;
  /** Keep the response body (as text) in the sample. */
  keepBody?: boolean;
  /** HTTP method (default POST). */
  method?: string;
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

  post(path: string, body: string, done: (s: Sample) => void, opts: PostOptions = {}): void {
    const t0 = performance.now();
    this.inflight++;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (status: number, timing: Record<string, number>, text?: string, error?: string): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      this.inflight--;
      const s: Sample = { ok: status >= 200 && status < 300, status, e2eMs: performance.now() - t0, timing };
      if (text !== undefined) s.body = text;
      if (error !== undefined) s.error = error;
      done(s);
    };
    const req = request(
      { host: this.host, port: this.port, method: opts.method ?? 'POST', path, agent: this.agent, headers: { ...opts.headers, authorization: `Bearer ${this.apiKey}`, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        if (opts.keepBody === true) res.on('data', (c: Buffer) => chunks.push(c));
        else res.resume();
        res.on('end', () => finish(res.statusCode ?? 0, parseServerTiming(res.headers['server-timing'] as string | undefined), opts.keepBody === true ? Buffer.concat(chunks).toString('utf8') : undefined));
        res.on('error', (e) => finish(0, {}, undefined, e.message));
      },
    );
    if (opts.timeoutMs !== undefined) {
      const limit = opts.timeoutMs;
      timer = setTimeout(() => {
        finish(0, {}, undefined, `no response within ${limit} ms`);
        req.destroy();
      }, limit);
    }
    req.on('error', (e) => finish(0, {}, undefined, e.message));
    req.end(body);
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Fire `fire(k)` at `rate` per second for `durationMs`, on schedule (open
 * loop): late ticks catch up instead of shifting the schedule. An `onTick`
 * that returns false stops the loop early; it resolves with the calls fired.
 */
export function openLoop(rate: number, durationMs: number, fire: (k: number) => void, onTick?: (sent: number) => boolean | void): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now();
    const total = Math.floor((rate * durationMs) / 1000);
    let k = 0;
    const step = (): void => {
      const elapsed = performance.now() - start;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (k < due) fire(k++);
      if (onTick?.(k) === false || k >= total) resolve(k);
      else setTimeout(step, Math.max(0, ((k * 1000) / rate) - (performance.now() - start)));
    };
    step();
  });
}
