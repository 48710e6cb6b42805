/**
 * Log capture inside a node runner: what a function writes to
 * process.stdout/stderr (console.* included) becomes lines tagged with the
 * call they were written from, sent to the worker over IPC in batches. Bound
 * into the jail next to the runner, so it imports nothing but Node's modules
 * and its sibling line splitter.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { LineSplitter, MAX_LINE_BYTES } from './line-splitter.js';
import type { RunnerLogLine } from './runner-protocol.js';

/** A batch waits at most this long for more lines before it is sent. */
export const LOG_FLUSH_INTERVAL_MS = 10;
/** A batch is sent at once when it holds this many lines … */
export const LOG_BATCH_MAX_LINES = 256;
/** … or about this many bytes of text. */
export const LOG_BATCH_MAX_BYTES = 64 * 1024;
/**
 * Log text handed to the IPC channel and not yet written out. A function that
 * logs faster than the worker reads loses the excess (counted, and reported as
 * one line) instead of growing the runner's memory without bound.
 */
export const LOG_MAX_UNSENT_BYTES = 4 * 1024 * 1024;

/** Per-line cost in the byte counts above, beside the text itself. */
const LINE_OVERHEAD = 48;

type Stream = RunnerLogLine['stream'];

export interface LogBatch {
  lines: RunnerLogLine[];
  dropped?: number;
}

/** Hand a batch to the worker; call `done` once it has left (or failed to). */
export type SendLogBatch = (batch: LogBatch, done: () => void) => void;

export class RunnerLogCapture {
  private readonly context = new AsyncLocalStorage<string>();
  /** Calls running now: a context whose call has ended (a timer it left behind) writes untagged lines. */
  private readonly running = new Set<string>();
  /** Unfinished lines, per call (`''` for none) and stream. */
  private readonly splitters = new Map<string, LineSplitter>();
  private batch: RunnerLogLine[] = [];
  private batchBytes = 0;
  private unsentBytes = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly original = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };

  constructor(
    private readonly send: SendLogBatch,
    private readonly now: () => number = Date.now,
    private readonly maxLineBytes = MAX_LINE_BYTES,
  ) {}

  /**
   * Route process.stdout/stderr writes (and so console.*) into the capture.
   * Nothing reaches the real streams any more; see `raw` for the runner's own
   * last-resort messages.
   */
  install(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
        const done = typeof encoding === 'function' ? encoding : cb;
        if (typeof chunk === 'string') {
          this.write(stream, typeof encoding === 'string' && encoding !== 'utf8' && encoding !== 'utf-8' && Buffer.isEncoding(encoding) ? Buffer.from(chunk, encoding) : chunk);
        } else if (chunk instanceof Uint8Array) {
          this.write(stream, chunk);
        } else {
          this.write(stream, String(chunk));
        }
        if (typeof done === 'function') process.nextTick(done);
        return true;
      };
      process[stream].write = write;
    }
  }

  /** Write to the runner's real stream (its pipe to the worker), bypassing the capture. */
  raw(stream: Stream, text: string): void {
    this.original[stream](text);
  }

  /** Run `fn` as call `callId`: whatever it writes, now or after an await, is that call's. */
  run<T>(callId: string, fn: () => T): T {
    this.running.add(callId);
    return this.context.run(callId, fn);
  }

  /**
   * The call ended: its unfinished lines are completed and everything
   * captured so far is sent now, so its lines reach the worker before its result.
   */
  end(callId: string): void {
    this.running.delete(callId);
    for (const stream of ['stdout', 'stderr'] as const) {
      const key = `${callId}\0${stream}`;
      const s = this.splitters.get(key);
      if (s === undefined) continue;
      this.splitters.delete(key);
      s.end();
    }
    this.flush();
  }

  /** Text written to a stream, from whatever call is current. */
  write(stream: Stream, chunk: string | Uint8Array): void {
    const current = this.context.getStore();
    const callId = current !== undefined && this.running.has(current) ? current : undefined;
    const key = `${callId ?? ''}\0${stream}`;
    let s = this.splitters.get(key);
    if (s === undefined) {
      s = new LineSplitter((line) => this.add(stream, line, callId), this.maxLineBytes);
      this.splitters.set(key, s);
    }
    s.push(chunk);
  }

  /** A thrown error of a call, its stack as that call's stderr lines. */
  error(callId: string, e: unknown): void {
    const text = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : `uncaught value: ${String(e)}`;
    const s = new LineSplitter((line) => this.add('stderr', line, callId), this.maxLineBytes);
    s.push(text);
    s.end();
  }

  /** Send what is batched; `done` runs once it has left. */
  flush(done?: () => void): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.batch.length === 0 && this.dropped === 0) {
      done?.();
      return;
    }
    const batch: LogBatch = { lines: this.batch };
    if (this.dropped > 0) batch.dropped = this.dropped;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.dropped = 0;
    this.unsentBytes += bytes;
    this.send(batch, () => {
      this.unsentBytes -= bytes;
      done?.();
    });
  }

  /** Before the runner exits: complete every unfinished line and send everything. */
  close(done: () => void): void {
    for (const s of this.splitters.values()) s.end();
    this.splitters.clear();
    this.flush(done);
  }

  private add(stream: Stream, line: string, callId: string | undefined): void {
    const bytes = line.length + LINE_OVERHEAD;
    if (this.unsentBytes + this.batchBytes + bytes > LOG_MAX_UNSENT_BYTES) {
      this.dropped++;
      return;
    }
    const entry: RunnerLogLine = { ts: this.now(), stream, line };
    if (callId !== undefined) entry.callId = callId;
    this.batch.push(entry);
    this.batchBytes += bytes;
    if (this.batch.length >= LOG_BATCH_MAX_LINES || this.batchBytes >= LOG_BATCH_MAX_BYTES) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, LOG_FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }
}
