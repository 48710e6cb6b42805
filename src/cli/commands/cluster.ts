import type { Command } from 'commander';
import { call, resolveTarget, type ClientOptions } from '../client.js';
import { printRows } from '../output.js';

interface NodeView {
  id: string;
  name: string;
  state: string;
  runtime: string;
  cores: number;
  memoryMb: number;
  freeMemoryMb: number;
  sandboxes: number;
  inflight: number;
  lastHeartbeatMsAgo: number;
}

export function registerClusterCommands(program: Command, globals: () => ClientOptions & { output: string }): void {
  program
    .command('nodes')
    .description('list workers')
    .action(async () => {
      const g = globals();
      const r = await call<{ nodes: NodeView[] }>(resolveTarget(g), 'GET', '/v1/nodes');
      printRows(
        r.nodes.map((n) => ({ ...n, memory: `${n.freeMemoryMb}/${n.memoryMb} MB`, heartbeat: `${(n.lastHeartbeatMsAgo / 1000).toFixed(1)}s ago` })),
        ['name', 'state', 'runtime', 'cores', 'memory', 'sandboxes', 'inflight', 'heartbeat', 'id'],
        g.output,
        r,
      );
    });
  program
    .command('status')
    .description('cluster summary')
    .action(async () => {
      const g = globals();
      const t = resolveTarget(g);
      const r = await call<{ version: string; uptimeS: number; nodes: { ready: number; total: number }; functions: number; sandboxes: number; inflight: number; queued: number }>(t, 'GET', '/v1/status');
      if (g.output === 'json') {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `gateway:   ${t.gateway}\nversion:   ${r.version}\nuptime:    ${r.uptimeS}s\nworkers:   ${r.nodes.ready} ready of ${r.nodes.total}\nfunctions: ${r.functions}\nsandboxes: ${r.sandboxes}\nin flight: ${r.inflight}\nqueued:    ${r.queued}\n`,
      );
    });
}
