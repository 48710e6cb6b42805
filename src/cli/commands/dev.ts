import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Invocation } from '../command-table.js';
import { startControlPlaneFromFlags, type ControlPlaneFlags } from '../start-control-plane.js';

const BIN = fileURLToPath(new URL('../../../../bin/baton.js', import.meta.url));

/** `baton dev`: a control plane in this process and one process worker as a child, restarted if it dies. */
export async function run({ opts: f }: Invocation<ControlPlaneFlags>): Promise<void> {
  const { cp, logger } = await startControlPlaneFromFlags(f, 'baton-dev');
  let worker: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  const startWorkerChild = (): void => {
    // The token goes by environment, never on a command line; the IPC channel tells the
    // worker when this process is gone, even after kill -9, so it never outlives us.
    worker = spawn(
      process.execPath,
      [BIN, 'worker', '--control-plane', cp.url.replace(/^http/, 'ws'), '--state-dir', resolve(f.dataDir, 'worker'), '--name', 'local', '--log-level', f.logLevel],
      { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: cp.credentials.joinToken } },
    );
    worker.on('error', (e) => logger.error({ err: e }, 'cannot start the local worker'));
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      restarts++;
      const delay = Math.min(10_000, 250 * 2 ** Math.min(restarts, 6));
      logger.error({ code, signal, restartInMs: delay }, 'local worker exited; restarting it');
      setTimeout(startWorkerChild, delay);
    });
  };
  startWorkerChild();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const res = await fetch(`${cp.url}/readyz`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) {
      process.stderr.write('baton dev: the local worker did not join within 20 s; check the log above\n');
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(
    [
      '',
      `gateway: ${cp.url}`,
      `api key: ${cp.credentials.apiKey}`,
      `credentials: ${cp.credentialsPath}`,
      '',
      'try:',
      '  npx baton deploy -f examples/hello/baton.yaml',
      '  npx baton invoke hello -d world',
      `  curl -s -X POST ${cp.url}/function/hello -H "Authorization: Bearer $(node -p "require('./${f.dataDir.replace(/^\.\//, '')}/credentials.json').apiKey")" -d world`,
      '',
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((done) => {
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      const w = worker;
      const finish = (): void => void cp.stop().then(done);
      if (w === undefined || w.exitCode !== null || w.signalCode !== null) finish();
      else {
        w.once('exit', finish);
        w.kill('SIGTERM');
      }
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.flush();
}
