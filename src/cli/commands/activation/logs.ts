import { call, namespaceOf, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';
import { formatLogLine, type LogLineView } from '../../log-follow.js';

/** `baton activation logs <id>`: the lines the call wrote, as its workers still hold them. */
export async function run({ args: [id], opts, globals }: Invocation<{ namespace?: string }, [id: string]>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const r = await call<{ lines: LogLineView[]; unanswered?: { node: string; reason: string }[] }>(t, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/activations/${encodeURIComponent(id)}/logs`);
  for (const u of r.unanswered ?? []) process.stderr.write(`baton: worker ${u.node} did not answer (${u.reason}); its lines are missing\n`);
  if (globals.output === 'json') {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  let out = '';
  for (const l of r.lines) out += `${formatLogLine(l)}\n`;
  process.stdout.write(out);
}
