import { call, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';

/** `baton ns create <name>`: create a namespace and print its API key, which the server keeps only hashed. */
export async function run({ args: [name], globals }: Invocation<object, [name: string]>): Promise<void> {
  const r = await call<{ namespace: string; apiKey: string }>(resolveTarget(globals), 'POST', '/v1/namespaces', { name });
  if (globals.output === 'json') process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else process.stdout.write(`namespace: ${r.namespace}\napi key: ${r.apiKey}\n(keep the key: it is stored hashed and cannot be shown again)\n`);
}
