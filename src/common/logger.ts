import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One root logger per process. Components take a child logger in their
 * constructor (`log.child({ component: 'gateway' })`). Secrets are redacted.
 */
export function createRootLogger(opts: { level?: string; name?: string; destination?: number; sync?: boolean } = {}): Logger {
  const level = opts.level ?? process.env['BATON_LOG_LEVEL'] ?? 'info';
  return pino(
    {
      name: opts.name ?? 'baton',
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['apiKey', 'joinToken', 'token', '*.apiKey', '*.joinToken', '*.token', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination({ dest: opts.destination ?? 2, sync: opts.sync ?? false }),
  );
}

/** A logger that drops everything: for unit tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
