import type { FunctionView } from '../../../controlplane/function-service.js';
import { call, namespaceOf, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';
import { printRows } from '../../output.js';

/** `baton fn ls`: the functions of a namespace as a table, or the API's JSON with -o json. */
export async function run({ opts, globals }: Invocation<{ namespace?: string }>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const r = await call<{ functions: FunctionView[] }>(t, 'GET', `/v1/namespaces/${ns}/functions`);
  printRows(
    r.functions.map((f) => ({ name: f.name, runtime: f.runtime, class: f.priceClass, version: f.version, scale: `${f.scale.min}-${f.scale.max}`, ready: f.status.ready, inflight: f.status.inflight, queued: f.status.queued })),
    ['name', 'runtime', 'class', 'version', 'scale', 'ready', 'inflight', 'queued'],
    globals.output,
    r,
  );
}
