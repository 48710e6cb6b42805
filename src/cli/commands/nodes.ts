import { call, resolveTarget } from '../client.js';
import type { Invocation } from '../command-table.js';
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

/** `baton nodes`: the workers the control plane knows. */
export async function run({ globals }: Invocation): Promise<void> {
  const r = await call<{ nodes: NodeView[] }>(resolveTarget(globals), 'GET', '/v1/nodes');
  printRows(
    r.nodes.map((n) => ({ ...n, memory: `${n.freeMemoryMb}/${n.memoryMb} MB`, heartbeat: `${(n.lastHeartbeatMsAgo / 1000).toFixed(1)}s ago` })),
    ['name', 'state', 'runtime', 'cores', 'memory', 'sandboxes', 'inflight', 'heartbeat', 'id'],
    globals.output,
    r,
  );
}
