import { createRootLogger } from '../common/logger.js';
import { startWorker, type WorkerOptions } from './worker-daemon.js';

/** `baton worker`: run the daemon until SIGINT/SIGTERM, then stop its sandboxes and exit. */
export async function runWorkerFromCli(options: Omit<WorkerOptions, 'logger'> & { logLevel?: string }): Promise<void> {
  const logger = createRootLogger(options.logLevel === undefined ? { name: 'baton-worker' } : { name: 'baton-worker', level: options.logLevel });
  const daemon = await startWorker({ ...options, logger });
  const onSignal = (sig: string): void => {
    logger.info({ signal: sig }, 'stopping');
    void daemon.stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await daemon.whenStopped();
  logger.flush();
}
