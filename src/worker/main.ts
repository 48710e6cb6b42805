import { createRootLogger } from '../common/logger.js';
import { installProcessGuard } from '../common/process-guard.js';
import { startWorker, type WorkerOptions } from './worker-daemon.js';

/**
 * `baton worker`: run the daemon. SIGTERM drains (no new sandboxes, running
 * calls finish within the drain timeout) and exits; SIGINT stops at once. When
 * started with an IPC channel (by `baton dev`), losing it means the parent is
 * gone, even after kill -9: drain and exit rather than live on as an orphan.
 */
export async function runWorkerFromCli(options: Omit<WorkerOptions, 'logger'> & { logLevel?: string }): Promise<void> {
  const logger = createRootLogger(options.logLevel === undefined ? { name: 'baton-worker' } : { name: 'baton-worker', level: options.logLevel });
  installProcessGuard(logger, 'worker');
  const daemon = await startWorker({ ...options, logger });
  process.once('SIGTERM', () => {
    logger.info({ signal: 'SIGTERM' }, 'draining, then stopping');
    void daemon.drain();
  });
  process.once('SIGINT', () => {
    logger.info({ signal: 'SIGINT' }, 'stopping');
    void daemon.stop();
  });
  if (process.send !== undefined) {
    process.once('disconnect', () => {
      logger.warn('the parent process is gone: stopping');
      void daemon.drain();
    });
  }
  await daemon.whenStopped();
  logger.flush();
  process.disconnect?.();
}
