import { resolve } from 'node:path';

/** The flags `baton controlplane` and `baton dev` share (see CONTROL_PLANE_OPTIONS in commands.ts). */
export interface ControlPlaneFlags {
  host: string;
  port: number;
  dataDir: string;
  heartbeatTimeout: number;
  autoscalerTick: number;
  maxQueue: number;
  maxWait: number;
  maxResponse: number;
  maxPendingAsync: number;
  activationRetention: number;
  priceClasses?: string;
  memoryPrice: number;
  maxCallDepth: number;
  schedulerThreads?: number;
  maxWorkers: number;
  logLevel: string;
}

/** Start a control plane in this process with its logger and process guard; the heavy modules load here, not at CLI start. */
export async function startControlPlaneFromFlags(f: ControlPlaneFlags, name: string) {
  if (f.schedulerThreads !== undefined && (f.schedulerThreads < 1 || f.schedulerThreads > 256)) {
    const { CliError } = await import('./cli-error.js');
    throw new CliError(`--scheduler-threads ${f.schedulerThreads}: expected 1 to 256 scheduler cores (worker threads); leave it out for one per CPU core but one`);
  }
  if (f.maxWorkers < 1 || f.maxWorkers > 1 << 20) {
    const { CliError } = await import('./cli-error.js');
    throw new CliError(`--max-workers ${f.maxWorkers}: expected 1 to ${1 << 20}`);
  }
  const { createRootLogger } = await import('../common/logger.js');
  const logger = createRootLogger({ level: f.logLevel, name });
  (await import('../common/process-guard.js')).installProcessGuard(logger.child({ component: 'process-guard' }), 'control plane');
  const { startControlPlane } = await import('../controlplane/control-plane.js');
  const opts: Parameters<typeof startControlPlane>[0] = {
    host: f.host,
    port: f.port,
    dataDir: resolve(f.dataDir),
    logger,
    heartbeatTimeoutMs: f.heartbeatTimeout,
    autoscalerTickMs: f.autoscalerTick,
    maxQueuePerFunction: Math.max(1, f.maxQueue),
    maxWaitMs: Math.max(1, f.maxWait),
    maxResponseBytes: Math.max(1, f.maxResponse),
    maxPendingAsync: Math.max(1, f.maxPendingAsync),
    activationRetentionMs: f.activationRetention,
    memoryPrice: f.memoryPrice,
    maxCallDepth: Math.max(1, f.maxCallDepth),
    maxWorkers: f.maxWorkers,
    logLevel: f.logLevel,
  };
  if (f.schedulerThreads !== undefined) opts.schedulerThreads = f.schedulerThreads;
  if (f.priceClasses !== undefined) opts.priceClasses = (await import('./parsers.js')).priceClassList(f.priceClasses);
  const key = process.env['BATON_API_KEY'];
  const token = process.env['BATON_JOIN_TOKEN'];
  if (key !== undefined && key !== '') opts.apiKey = key;
  if (token !== undefined && token !== '') opts.joinToken = token;
  const cp = await startControlPlane(opts);
  return { cp, logger };
}
