/**
 * Child process of `baton bench churn`: N emulated worker daemons in one
 * process, each with its own WebSocket connection to the control plane.
 * Args: <controlPlaneWsUrl> <count> <stateDir> <createMs> <execMs>; the join
 * token comes in BATON_JOIN_TOKEN (never on a command line).
 */
import { silentLogger } from '../../src/common/logger.js';
import { startWorker, type WorkerDaemon } from '../../src/worker/worker-daemon.js';

const [, , url, countText, stateDir, createMs, execMs] = process.argv;
const token = process.env['BATON_JOIN_TOKEN'];
if (url === undefined || token === undefined || countText === undefined || stateDir === undefined) {
  process.stderr.write('usage: BATON_JOIN_TOKEN=… fleet <ws-url> <count> <state-dir> [createMs] [execMs]\n');
  process.exit(64);
}
const daemons: WorkerDaemon[] = [];
const logger = silentLogger();
for (let i = 0; i < Number(countText); i++) {
  daemons.push(
    await startWorker({
      controlPlane: url,
      joinToken: token,
      stateDir,
      nodeId: `emulated-${i}`,
      name: `emulated-${i}`,
      runtime: 'emulated',
      cores: 8,
      memoryMb: 32 * 1024,
      emulated: { createMs: Number(createMs ?? 0), execMs: Number(execMs ?? 0) },
      logger,
    }),
  );
}
process.stdout.write(`${JSON.stringify({ started: daemons.length })}\n`);
const stop = (): void => {
  void Promise.all(daemons.map((d) => d.stop())).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
