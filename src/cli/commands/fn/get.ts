import type { FunctionView } from '../../../controlplane/function-service.js';
import { call, namespaceOf, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';

/** `baton fn get <name>`: one function's view as JSON. */
export async function run({ args: [name], opts, globals }: Invocation<{ namespace?: string }, [name: string]>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const r = await call<{ function: FunctionView }>(t, 'GET', `/v1/namespaces/${ns}/functions/${name}`);
  process.stdout.write(`${JSON.stringify(r.function, null, 2)}\n`);
}
