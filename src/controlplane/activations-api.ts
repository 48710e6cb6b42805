import type { Clock } from '../common/clock.js';
import { parseDuration } from '../common/duration.js';
import { BatonError } from '../common/errors.js';
import { monthOf } from '../policies/budget.js';
import type { Store } from '../storage/store.js';
import type { ActivationLog } from './activations.js';
import type { AsyncInvoker } from './async-invocations.js';
import { requireAdmin, requireNamespace } from './auth.js';
import type { BudgetGate } from './budget-gate.js';
import { parseJson } from './http-kit.js';
import { responseOf } from './invoke-api.js';
import type { RouteTable } from './routes.js';
import type { UsageLedger } from './usage-ledger.js';
import type { FetchLogs } from './logs-api.js';

export interface ActivationsApiDeps {
  routes: RouteTable;
  store: Store;
  activations: ActivationLog;
  async: AsyncInvoker;
  ledger: UsageLedger;
  budgets: BudgetGate;
  clock: Clock;
  /** The function logs, asked of the workers (see logs-api.ts). */
  fetchLogs: FetchLogs;
  /** Bring in the usage the scheduler cores measured and have not sent yet, so reports include every call answered so far. */
  collectUsage(): Promise<void>;
}

/**
 * A point in time from a query parameter: epoch milliseconds, an ISO date, or
 * a duration meaning that long ago (`5m`, `1h`).
 */
export function parseTime(raw: string, now: number, what: string): number {
  const text = raw.trim();
  if (/^\d{10,}$/.test(text)) return Number(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isNaN(t)) return t;
  }
  try {
    return now - parseDuration(text, what);
  } catch {
    throw new BatonError('bad_request', `${what}: "${text.slice(0, 100)}" is not a time (epoch ms, ISO date, or a duration ago such as 5m)`);
  }
}

function query(q: string): URLSearchParams {
  try {
    return new URLSearchParams(q);
  } catch {
    throw new BatonError('bad_request', 'malformed query string');
  }
}

/**
 * Activation records (`/v1/namespaces/{ns}/activations…`), usage
 * (`…/usage`) and monthly budgets (`…/budget`). A namespace key sees only its
 * own namespace; setting a budget needs the admin key.
 */
export function mountActivationsApi(d: ActivationsApiDeps): void {
  const { routes } = d;
  const known = (ns: string): void => {
    if (d.store.getNamespace(ns) === undefined) throw new BatonError('not_found', `namespace "${ns}" not found`);
  };

  routes.add('get', '/v1/namespaces/:ns/activations', async (ex, req, who) => {
    const [ns = ''] = req.params;
    requireNamespace(who, ns);
    known(ns);
    const q = query(req.query);
    const now = d.clock.wallNow();
    const limitText = q.get('limit') ?? '50';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new BatonError('bad_request', `limit: expected an integer from 1 to 1000, got "${limitText.slice(0, 40)}"`);
    const since = q.get('since');
    const fn = q.get('function') ?? undefined;
    const opts = { since: since === null ? 0 : parseTime(since, now, 'since'), limit, ...(fn === undefined ? {} : { function: fn }) };
    ex.json(200, { activations: await d.activations.list(ns, opts, d.async.liveRecords(ns)) });
  });

  routes.add('get', '/v1/namespaces/:ns/activations/:id', async (ex, req, who) => {
    const [ns = '', id = ''] = req.params;
    requireNamespace(who, ns);
    const a = await d.activations.get(ns, id);
    if (a === undefined) throw new BatonError('not_found', `activation "${id}" not found in namespace "${ns}" (synchronous calls are kept for a while, async ones for the retention period)`);
    ex.json(200, { activation: a.record });
  });

  routes.add('get', '/v1/namespaces/:ns/activations/:id/result', async (ex, req, who) => {
    const [ns = '', id = ''] = req.params;
    requireNamespace(who, ns);
    const a = await d.activations.get(ns, id);
    if (a === undefined) throw new BatonError('not_found', `activation "${id}" not found in namespace "${ns}"`);
    const r = a.record;
    if (r.status === 'queued' || r.status === 'running') throw new BatonError('conflict', `activation "${id}" is ${r.status}: its result is not there yet`, { retryAfter: 1 });
    if (a.result === undefined) {
      if (!r.async) throw new BatonError('not_found', `activation "${id}" was a synchronous call: its result went to its caller and is not kept`);
      throw new BatonError('not_found', `activation "${id}" has no stored result${r.error === undefined ? '' : `: ${r.error.message}`}`);
    }
    // the stored response is what the function (or the platform, for an error) answered: status, headers, body
    const { status, headers, body } = responseOf(a.result);
    headers['x-call-id'] = id;
    ex.send(status, headers, body);
  });

  routes.add('get', '/v1/namespaces/:ns/activations/:id/logs', async (ex, req, who) => {
    const [ns = '', id = ''] = req.params;
    requireNamespace(who, ns);
    const a = await d.activations.get(ns, id);
    if (a === undefined) throw new BatonError('not_found', `activation "${id}" not found in namespace "${ns}"`);
    // the lines its calls wrote (an async call's attempts all carry its id), as the workers still hold them
    const r = await d.fetchLogs({ ns, fn: a.record.function, callId: id, limit: 10_000 });
    ex.json(200, { activation: id, ...r });
  });

  routes.add('get', '/v1/namespaces/:ns/usage', async (ex, req, who) => {
    const [ns = ''] = req.params;
    requireNamespace(who, ns);
    known(ns);
    await d.collectUsage();
    const q = query(req.query);
    const now = d.clock.wallNow();
    const fromText = q.get('from');
    const toText = q.get('to');
    const from = fromText === null ? monthOf(now).start : parseTime(fromText, now, 'from');
    const to = toText === null ? now + 1 : parseTime(toText, now, 'to');
    if (to <= from) throw new BatonError('bad_request', `to (${new Date(to).toISOString()}) must be after from (${new Date(from).toISOString()})`);
    ex.json(200, d.ledger.report(ns, from, to));
  });

  routes.add('get', '/v1/namespaces/:ns/budget', async (ex, req, who) => {
    const [ns = ''] = req.params;
    requireNamespace(who, ns);
    known(ns);
    await d.collectUsage();
    ex.json(200, { budget: d.budgets.view(ns) });
  });

  routes.add('put', '/v1/namespaces/:ns/budget', async (ex, req, who) => {
    const [ns = ''] = req.params;
    requireAdmin(who);
    known(ns);
    const body = parseJson(await ex.readBody(req, 4096));
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !('monthly' in body)) throw new BatonError('bad_request', 'expected {"monthly": <amount>} (or {"monthly": null} to remove the budget)');
    const monthly = (body).monthly;
    if (monthly !== null && (typeof monthly !== 'number' || !Number.isFinite(monthly) || monthly < 0)) throw new BatonError('bad_request', `monthly: expected a non-negative number (or null), got ${JSON.stringify(monthly)?.slice(0, 40)}`);
    d.budgets.set(ns, monthly);
    await d.collectUsage();
    ex.json(200, { budget: d.budgets.view(ns) });
  });
}
