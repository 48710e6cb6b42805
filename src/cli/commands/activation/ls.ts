import { call, namespaceOf, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';
import { printRows } from '../../output.js';
import { type ActivationView, activationRow, ACTIVATION_COLUMNS } from './view.js';

/** `baton activation ls`: the newest activation records of a namespace. */
export async function run({ opts, globals }: Invocation<{ namespace?: string; function?: string; since?: string; limit: string }>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const q = new URLSearchParams({ limit: opts.limit });
  if (opts.function !== undefined) q.set('function', opts.function);
  if (opts.since !== undefined) q.set('since', opts.since);
  const r = await call<{ activations: ActivationView[] }>(t, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/activations?${q.toString()}`);
  printRows(r.activations.map(activationRow), ACTIVATION_COLUMNS, globals.output, r);
}
