import { call, namespaceOf, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';

/** `baton activation get <id>`: one record, as JSON (it has many fields). */
export async function run({ args: [id], opts, globals }: Invocation<{ namespace?: string }, [id: string]>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const r = await call<{ activation: unknown }>(t, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/activations/${encodeURIComponent(id)}`);
  process.stdout.write(`${JSON.stringify(r.activation, null, 2)}\n`);
}
