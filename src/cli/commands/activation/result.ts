import { check, namespaceOf, request, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';

/** `baton activation result <id>`: the stored response body of an async call; non-zero exit when it failed or is not ready. */
export async function run({ args: [id], opts, globals }: Invocation<{ namespace?: string }, [id: string]>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const r = check(await request(t, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/activations/${encodeURIComponent(id)}/result`));
  process.stdout.write(r.body);
  if (process.stdout.isTTY && r.body.length > 0 && r.body[r.body.length - 1] !== 10) process.stdout.write('\n');
}
