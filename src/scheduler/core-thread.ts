/**
 * Entry of a scheduler-core worker thread (started by CoreHost on the main
 * thread): builds the SchedulerCore from workerData, listens, and wires the
 * ports. A fault the core does not handle is logged and counted like on the
 * main thread (process guard), and the core keeps serving.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createRootLogger } from '../common/logger.js';
import { installProcessGuard } from '../common/process-guard.js';
import type { CoreInit, CoreToMain } from './core-messages.js';
import { SchedulerCore } from './scheduler-core.js';

const init = workerData as CoreInit;
const port = parentPort;
if (port === null) throw new Error('core-thread.js runs as a worker thread of the control plane');
// written at once: a thread's buffered lines would be lost when it ends, and a core logs little
const log = createRootLogger({ level: init.logLevel, name: 'baton-controlplane', sync: true }).child({ component: 'core', core: init.index });
installProcessGuard(log.child({ component: 'process-guard' }), `scheduler core ${init.index}`);

const say = (m: CoreToMain): void => port.postMessage([m]);
let core: SchedulerCore | undefined;
try {
  core = new SchedulerCore(init, port, log);
  const c = core;
  port.on('message', (data: unknown) => c.fromMain(data));
  init.peers.forEach((p, i) => {
    if (p === undefined) return;
    p.on('message', (data: unknown) => c.fromPeer(i, data));
  });
  const stopPorts = (): void => {
    port.close();
    for (const p of init.peers) p?.close();
  };
  port.on('message', (data: unknown) => {
    if (Array.isArray(data) && data.some((m: { t?: string }) => m.t === 'stop')) setImmediate(stopPorts);
  });
  const linkPort = await c.start();
  say({ t: 'listening', linkPort });
} catch (e) {
  log.error({ err: e }, 'scheduler core failed to start');
  say({ t: 'failed', message: e instanceof Error ? e.message : String(e) });
  // every socket must be closed before the thread can end
  core?.stop();
  port.close();
  for (const p of init.peers) p?.close();
}
