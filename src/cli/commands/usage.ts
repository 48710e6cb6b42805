import { call, namespaceOf, resolveTarget } from '../client.js';
import type { Invocation } from '../command-table.js';
import { printRows } from '../output.js';

interface Totals {
  invocations: number;
  cpuSeconds: number;
  gbSeconds: number;
  cost: number;
}

interface Usage extends Totals {
  namespace: string;
  from: string;
  to: string;
  byClass: Record<string, Totals>;
  byFunction: Record<string, Totals & { byClass: Record<string, Totals> }>;
}

const fmt = (t: Totals): Record<string, unknown> => ({ calls: t.invocations, cpu_s: t.cpuSeconds.toFixed(4), gb_s: t.gbSeconds.toFixed(4), cost: t.cost.toFixed(6) });

/** `baton usage`: what a namespace used and what it costs, by function and class. */
export async function run({ opts, globals }: Invocation<{ namespace?: string; from?: string; to?: string }>): Promise<void> {
  const t = resolveTarget(globals);
  const ns = await namespaceOf(t, opts.namespace);
  const q = new URLSearchParams();
  if (opts.from !== undefined) q.set('from', opts.from);
  if (opts.to !== undefined) q.set('to', opts.to);
  const u = await call<Usage>(t, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/usage${q.size > 0 ? `?${q.toString()}` : ''}`);
  const rows: Record<string, unknown>[] = [];
  for (const [fn, f] of Object.entries(u.byFunction).sort(([a], [b]) => a.localeCompare(b))) {
    for (const [cls, c] of Object.entries(f.byClass).sort(([a], [b]) => a.localeCompare(b))) rows.push({ function: fn, class: cls, ...fmt(c) });
  }
  for (const [cls, c] of Object.entries(u.byClass).sort(([a], [b]) => a.localeCompare(b))) rows.push({ function: '(all)', class: cls, ...fmt(c) });
  rows.push({ function: '(all)', class: '(all)', ...fmt(u) });
  if (globals.output !== 'json') process.stdout.write(`namespace ${u.namespace}, ${u.from} to ${u.to}\n`);
  printRows(rows, ['function', 'class', 'calls', 'cpu_s', 'gb_s', 'cost'], globals.output, u);
}
