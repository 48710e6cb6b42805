import type { LogLine } from '../protocol/messages.js';

/** Where a sandbox's output lines go: the worker's log store, or nowhere. */
export interface SandboxLogSink {
  /** A sandbox starts: its lines are written through the returned handle until it closes. */
  open(sandboxId: string, functionKey: string): SandboxLog;
}

export interface SandboxLog {
  /** One line (already split and cut to length). `ts`: when it was written, epoch ms (default: now). */
  write(stream: LogLine['stream'], line: string, callId?: string, ts?: number): void;
  /** The sandbox's processes are gone: no more lines will come. */
  close(): void;
}

const NO_LOG: SandboxLog = { write: () => undefined, close: () => undefined };

/** For runtimes used without a log store (tests, tools): output is dropped. */
export const DISCARD_LOGS: SandboxLogSink = { open: () => NO_LOG };
