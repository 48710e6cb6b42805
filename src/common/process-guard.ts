import type { Logger } from './logger.js';

/** How many faults the process guard has caught since it was installed. */
export interface ProcessFaults {
  uncaughtExceptions: number;
  unhandledRejections: number;
}

const faults: ProcessFaults = { uncaughtExceptions: 0, unhandledRejections: 0 };
let installed = false;

/** The counts so far (for metrics); all zero if the guard is not installed. */
export function processFaults(): Readonly<ProcessFaults> {
  return faults;
}

/**
 * The last line of defence for a long-running server process: an exception
 * nobody caught or a promise rejection nobody handled is logged (with the
 * error under `err`) and counted, and the process keeps serving.
 *
 * This is a safety net, not error handling: every path that can fail on
 * client or worker input handles its own errors, and an entry in this log is a
 * bug to fix where it was thrown. Continuing is the right call for the control
 * plane: its state is rebuilt from the workers and SQLite anyway, and one bad
 * request must not cost every tenant their in-flight calls. Installing it twice
 * is a no-op.
 */
export function installProcessGuard(log: Logger, role = 'process'): void {
  if (installed) return;
  installed = true;
  const report = (kind: 'uncaughtException' | 'unhandledRejection', err: unknown, extra: Record<string, unknown>): void => {
    try {
      log.error({ err, ...extra, faults: { ...faults } }, `${kind} in the ${role}: logged and ignored so the ${role} keeps running; this is a bug where it was thrown`);
    } catch {
      // The logger itself failed (e.g. a getter on the error threw): say something rather than nothing.
      process.stderr.write(`baton: ${kind} in the ${role} (the logger failed to record it)\n`);
    }
  };
  process.on('uncaughtException', (err, origin) => {
    faults.uncaughtExceptions++;
    report('uncaughtException', err, { origin });
  });
  process.on('unhandledRejection', (reason) => {
    faults.unhandledRejections++;
    report('unhandledRejection', reason, {});
  });
}
