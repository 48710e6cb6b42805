import { call, namespaceOf, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';

/** `baton fn rm <name>`: delete a function. */
export async function run({ args: [name], opts, globals }: Invocation<{ namespace?: string }, [name: string]>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  await call(t, 'DELETE', `/v1/namespaces/${ns}/functions/${name}`);
  process.stdout.write(`${name}: deleted\n`);
}
