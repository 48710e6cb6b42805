import { CliError } from '../../cli-error.js';
import { call, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';

interface BudgetView {
  namespace: string;
  monthly: number | null;
  month: { start: string; end: string };
  spent: number;
  pace: number | null;
  ratio: number | null;
  served: string[];
  throttled: string[];
}

/** `baton ns budget NS [AMOUNT|none]`: show or set a namespace's monthly budget. */
export async function run({ args, globals }: Invocation<object, string[]>): Promise<void> {
  const [ns = '', amount] = args;
  const t = resolveTarget(globals);
  let b: BudgetView;
  if (amount === undefined) b = (await call<{ budget: BudgetView }>(t, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/budget`)).budget;
  else {
    const monthly = amount === 'none' ? null : Number(amount);
    if (monthly !== null && (!Number.isFinite(monthly) || monthly < 0 || amount.trim() === '')) throw new CliError(`amount: expected a non-negative number (or none), got "${amount}"`);
    b = (await call<{ budget: BudgetView }>(t, 'PUT', `/v1/namespaces/${encodeURIComponent(ns)}/budget`, { monthly })).budget;
  }
  if (globals.output === 'json') {
    process.stdout.write(`${JSON.stringify(b, null, 2)}\n`);
    return;
  }
  const lines = [
    `namespace: ${b.namespace}`,
    `budget:    ${b.monthly === null ? 'none' : `${b.monthly} per month`}`,
    `month:     ${b.month.start} to ${b.month.end}`,
    `spent:     ${b.spent.toFixed(6)}`,
  ];
  if (b.pace !== null) lines.push(`pace:      ${b.pace.toFixed(6)} (spent ${Math.round((b.ratio ?? 0) * 100)} % of it)`);
  lines.push(`throttled: ${b.throttled.length === 0 ? 'none' : b.throttled.join(', ')}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
