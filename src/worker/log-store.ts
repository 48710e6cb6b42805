import type { GetLogsFrame, LogLine } from '../protocol/messages.js';
import type { SandboxLog, SandboxLogSink } from '../sandbox/log-sink.js';
import { LogRing, type LogQueryResult } from './log-ring.js';

/** Lines kept per function on one worker (its sandboxes together): the newest win. */
export const LOG_LINES_PER_FUNCTION = 1000;
/** Bytes of log text kept per function on one worker. */
export const LOG_BYTES_PER_FUNCTION = 256 * 1024;
/** Bytes of log text one worker keeps for all functions together; past it, logs of gone sandboxes go first. */
export const LOG_BYTES_PER_WORKER = 32 * 1024 * 1024;
/** How long a function's log is kept after its last sandbox on this worker went. */
export const LOG_RETENTION_MS = 15 * 60_000;

/** What a stored line costs beside its text (the record and its fields). */
const LINE_OVERHEAD = 64;

export interface LogStoreLimits {
  linesPerFunction: number;
  bytesPerFunction: number;
  bytesTotal: number;
  retentionMs: number;
}

interface FunctionLog {
  readonly key: string;
  readonly ring: LogRing;
  /** Sandboxes of the function writing here now. */
  open: number;
  /** When the last of them closed (epoch ms). */
  closedAt: number;
}

/**
 * The worker's memory of its sandboxes' output: per function, the last lines
 * of all its sandboxes on this worker (each line names its sandbox and, for
 * node functions, its call), bounded per function and in total, and kept for
 * a while after the function's last sandbox here went, so the logs of a call
 * whose sandbox was deleted can still be read. Answers the control plane's
 * `getLogs`; nothing else reads it.
 */
export class LogStore implements SandboxLogSink {
  private readonly logs = new Map<string, FunctionLog>();
  private readonly limits: LogStoreLimits;
  private totalBytes = 0;
  private lastSweep = 0;

  constructor(
    private readonly now: () => number = Date.now,
    limits: Partial<LogStoreLimits> = {},
  ) {
    this.limits = {
      linesPerFunction: limits.linesPerFunction ?? LOG_LINES_PER_FUNCTION,
      bytesPerFunction: limits.bytesPerFunction ?? LOG_BYTES_PER_FUNCTION,
      bytesTotal: limits.bytesTotal ?? LOG_BYTES_PER_WORKER,
      retentionMs: limits.retentionMs ?? LOG_RETENTION_MS,
    };
  }

  /** Bytes held for all functions. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Functions with a log held. */
  get functions(): number {
    return this.logs.size;
  }

  open(sandboxId: string, functionKey: string): SandboxLog {
    this.sweep();
    const fn = this.logs.get(functionKey) ?? this.create(functionKey);
    fn.open++;
    let closed = false;
    return {
      write: (stream, line, callId, ts) => {
        const entry: LogLine = { ts: ts ?? this.now(), sandboxId, stream, line };
        if (callId !== undefined) entry.callId = callId;
        // the function's log may have been evicted under the total bound while this sandbox lives
        const target = this.logs.get(functionKey) ?? this.create(functionKey, closed ? 0 : 1);
        this.add(target, entry);
      },
      close: () => {
        if (closed) return;
        closed = true;
        const target = this.logs.get(functionKey);
        if (target === undefined || target.open === 0) return;
        target.open--;
        if (target.open === 0) target.closedAt = this.now();
      },
    };
  }

  query(q: Pick<GetLogsFrame, 'functionKey' | 'callId' | 'since' | 'limit'>): LogQueryResult {
    this.sweep();
    const fn = this.logs.get(q.functionKey);
    if (fn === undefined) return { lines: [], truncated: false };
    return fn.ring.query(q);
  }

  /** Forget the logs of functions whose sandboxes here all went longer than the retention ago. */
  sweep(force = false): void {
    const now = this.now();
    // at most once a second: open and query call it on their way
    if (!force && now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const fn of this.logs.values()) {
      if (fn.open === 0 && now - fn.closedAt > this.limits.retentionMs) this.remove(fn);
    }
  }

  private create(key: string, open = 0): FunctionLog {
    const fn: FunctionLog = { key, ring: new LogRing(this.limits.linesPerFunction, this.limits.bytesPerFunction), open, closedAt: this.now() };
    this.logs.set(key, fn);
    return fn;
  }

  private remove(fn: FunctionLog): void {
    this.totalBytes -= fn.ring.bytes;
    this.logs.delete(fn.key);
  }

  private add(fn: FunctionLog, line: LogLine): void {
    const cost = Buffer.byteLength(line.line) + LINE_OVERHEAD;
    this.totalBytes += cost - fn.ring.push(line, cost);
    if (this.totalBytes > this.limits.bytesTotal) this.shrink(fn);
  }

  /**
   * Over the total bound: logs of functions with no sandbox here go first
   * (longest gone first), then the oldest lines of the biggest log — never
   * the line just written.
   */
  private shrink(writing: FunctionLog): void {
    while (this.totalBytes > this.limits.bytesTotal) {
      let victim: FunctionLog | undefined;
      for (const fn of this.logs.values()) {
        if (fn.open === 0 && fn !== writing && (victim === undefined || fn.closedAt < victim.closedAt)) victim = fn;
      }
      if (victim !== undefined) {
        this.remove(victim);
        continue;
      }
      for (const fn of this.logs.values()) if (victim === undefined || fn.ring.bytes > victim.ring.bytes) victim = fn;
      if (victim === undefined || (victim === writing && victim.ring.size <= 1)) return;
      this.totalBytes -= victim.ring.dropOldest();
    }
  }
}
