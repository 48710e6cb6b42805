import { BatonError } from '../common/errors.js';
import { requireNamespace } from './auth.js';
import type { FunctionService } from './function-service.js';
import { LOGS_MAX_LIMIT, type LogCollector, type LogQuery, type LogsResult } from './log-collector.js';
import type { RouteTable } from './routes.js';

export type { LogEntry, LogQuery, LogsResult, UnansweredWorker } from './log-collector.js';

/**
 * The log lines of a function (optionally of one call) from every worker that
 * holds them. No tenancy check of its own: callers check the namespace first.
 */
export type FetchLogs = (q: LogQuery) => Promise<LogsResult>;

export interface LogsApiDeps {
  routes: RouteTable;
  functions: FunctionService;
  logs: LogCollector;
}

const PARAMS = new Set(['since', 'limit', 'callId']);

/** `since`: epoch milliseconds, or a date-time such as 2025-01-31T12:00:00Z. */
function parseSince(raw: string): number {
  const text = raw.trim();
  const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) throw new BatonError('bad_request', `since: "${raw.slice(0, 100)}" is neither epoch milliseconds nor a date-time like 2025-01-31T12:00:00Z`);
  return ms;
}

export function parseLogsQuery(query: string): Pick<LogQuery, 'since' | 'limit' | 'callId'> {
  const p = new URLSearchParams(query);
  const out: Pick<LogQuery, 'since' | 'limit' | 'callId'> = {};
  for (const [k, v] of p) {
    if (!PARAMS.has(k)) throw new BatonError('bad_request', `unknown query parameter "${k.slice(0, 100)}"; expected since, limit, callId`);
    if (p.getAll(k).length > 1) throw new BatonError('bad_request', `query parameter ${k} given more than once`);
    if (k === 'since') out.since = parseSince(v);
    else if (k === 'limit') {
      const n = /^\d+$/.test(v) ? Number(v) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > LOGS_MAX_LIMIT) throw new BatonError('bad_request', `limit: expected an integer from 1 to ${LOGS_MAX_LIMIT}, got "${v.slice(0, 100)}"`);
      out.limit = n;
    } else {
      if (v.length < 1 || v.length > 128) throw new BatonError('bad_request', `callId: expected 1 to 128 characters, got ${v.length}`);
      out.callId = v;
    }
  }
  return out;
}

/**
 * `GET /v1/namespaces/{ns}/functions/{fn}/logs?since=&limit=&callId=`: the
 * function's stdout/stderr lines, oldest first. A namespace key reads only its
 * own namespace. Returns the fetch function for other APIs (an activation's logs).
 */
export function mountLogsApi(d: LogsApiDeps): FetchLogs {
  const fetchLogs: FetchLogs = (q) => d.logs.fetch(q);
  d.routes.add('get', '/v1/namespaces/:ns/functions/:fn/logs', async (ex, req, who) => {
    const [ns = '', fn = ''] = req.params;
    requireNamespace(who, ns);
    // 404 for a function that does not exist (now) in the namespace
    d.functions.get(ns, fn);
    const q = parseLogsQuery(req.query);
    ex.json(200, await fetchLogs({ ns, fn, ...q }));
  });
  return fetchLogs;
}
