import type { Invocation } from '../command-table.js';
import { startControlPlaneFromFlags, type ControlPlaneFlags } from '../start-control-plane.js';

/** `baton controlplane`: run the control plane until SIGINT or SIGTERM. */
export async function run({ opts }: Invocation<ControlPlaneFlags>): Promise<void> {
  const { cp, logger } = await startControlPlaneFromFlags(opts, 'baton-controlplane');
  process.stdout.write(`gateway: ${cp.url}\ncredentials: ${cp.credentialsPath}\n`);
  await new Promise<void>((done) => {
    const stop = (): void => void cp.stop().then(done);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.flush();
}
