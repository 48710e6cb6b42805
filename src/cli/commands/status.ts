import { call, resolveTarget } from '../client.js';
import type { Invocation } from '../command-table.js';

interface StatusView {
  version: string;
  uptimeS: number;
  schedulerThreads: number;
  nodes: { ready: number; total: number };
  functions: number;
  sandboxes: number;
  inflight: number;
  queued: number;
}

/** `baton status`: a one-screen summary of the cluster. */
export async function run({ globals }: Invocation): Promise<void> {
  const t = resolveTarget(globals);
  const r = await call<StatusView>(t, 'GET', '/v1/status');
  if (globals.output === 'json') {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `gateway:   ${t.gateway}\nversion:   ${r.version}\nuptime:    ${r.uptimeS}s\nscheduler: ${r.schedulerThreads} core${r.schedulerThreads === 1 ? '' : 's'}\nworkers:   ${r.nodes.ready} ready of ${r.nodes.total}\nfunctions: ${r.functions}\nsandboxes: ${r.sandboxes}\nin flight: ${r.inflight}\nqueued:    ${r.queued}\n`,
  );
}
