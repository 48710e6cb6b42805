import { parseDuration } from '../../common/duration.js';
import { CliError } from '../cli-error.js';
import { check, request, resolveTarget, whoami, type Target } from '../client.js';
import type { Invocation } from '../command-table.js';
import { FollowCursor, formatLogLine, parseSinceOption, type LogLineView } from '../log-follow.js';

interface LogsReply {
  lines: LogLineView[];
  truncated?: boolean;
  unanswered?: { node: string; nodeId: string; reason: string }[];
}

interface LogsOptions {
  namespace?: string;
  since?: string;
  call?: string;
  limit: string;
  follow?: boolean;
  interval: string;
}

function logsPath(ns: string, fn: string, q: { since?: number | undefined; limit: number; callId?: string | undefined }): string {
  const p = new URLSearchParams();
  if (q.since !== undefined) p.set('since', String(Math.floor(q.since)));
  p.set('limit', String(q.limit));
  if (q.callId !== undefined) p.set('callId', q.callId);
  return `/v1/namespaces/${encodeURIComponent(ns)}/functions/${encodeURIComponent(fn)}/logs?${p.toString()}`;
}

function print(lines: readonly LogLineView[], json: boolean): void {
  let out = '';
  for (const l of lines) out += `${json ? JSON.stringify(l) : formatLogLine(l)}\n`;
  if (out !== '') process.stdout.write(out);
}

/** Say once per worker that its lines are missing, and again only after it answered in between. */
function warnUnanswered(r: LogsReply, warned: Set<string>): void {
  const now = new Set<string>();
  for (const u of r.unanswered ?? []) {
    now.add(u.nodeId);
    if (!warned.has(u.nodeId)) process.stderr.write(`baton: worker ${u.node} did not answer (${u.reason}); its lines are missing\n`);
  }
  warned.clear();
  for (const id of now) warned.add(id);
}

async function follow(t: Target, ns: string, fn: string, o: { since: number | undefined; limit: number; callId: string | undefined; json: boolean; intervalMs: number }): Promise<void> {
  const cursor = new FollowCursor(o.since);
  const warned = new Set<string>();
  let unreachable = false;
  let stop: (() => void) | undefined;
  let stopped = false;
  const onSignal = (): void => {
    stopped = true;
    stop?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    while (!stopped) {
      let r: LogsReply | undefined;
      try {
        r = check(await request(t, 'GET', logsPath(ns, fn, { since: cursor.since, limit: o.limit, callId: o.callId }))).json<LogsReply>();
        if (unreachable) process.stderr.write('baton: the control plane answers again\n');
        unreachable = false;
      } catch (e) {
        // a control plane that is away for a moment (restarting) is waited for; an error it answers with ends the command
        if (!(e instanceof CliError) || !e.message.startsWith('cannot reach')) throw e;
        if (!unreachable) process.stderr.write(`baton: ${e.message}; still trying\n`);
        unreachable = true;
      }
      if (r !== undefined) {
        if (r.truncated === true && r.lines.length >= o.limit) process.stderr.write(`baton: more than ${o.limit} new lines since the last look; some were skipped (raise --limit)\n`);
        warnUnanswered(r, warned);
        print(cursor.take(r.lines), o.json);
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, o.intervalMs);
        stop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `baton logs <fn>`: a function's log lines, once or followed. */
export async function run({ args, opts: o, globals: g }: Invocation<LogsOptions, [fn: string]>): Promise<void> {
  const [fn] = args;
  const json = g.output === 'json';
  const limit = Number(o.limit);
  if (!/^\d+$/.test(o.limit) || limit < 1 || limit > 10_000) throw new CliError(`--limit ${o.limit}: expected an integer from 1 to 10000`);
  let since: number | undefined;
  if (o.since !== undefined) {
    since = parseSinceOption(o.since, Date.now());
    if (since === undefined) throw new CliError(`--since ${o.since}: expected a duration (30s, 5m, 1h) or a date-time (2025-01-31T12:00:00Z)`);
  }
  let intervalMs: number;
  try {
    intervalMs = parseDuration(o.interval, '--interval');
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (intervalMs < 50) throw new CliError(`--interval ${o.interval}: expected at least 50ms`);
  const t = resolveTarget(g);
  const ns = o.namespace ?? (await whoami(t)).namespace;
  if (o.follow === true) {
    await follow(t, ns, fn, { since, limit, callId: o.call, json, intervalMs });
    return;
  }
  const r = check(await request(t, 'GET', logsPath(ns, fn, { since, limit, callId: o.call }))).json<LogsReply>();
  warnUnanswered(r, new Set());
  if (json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  print(r.lines, false);
  if (r.truncated === true) process.stderr.write(`baton: showing the newest ${r.lines.length} lines; use --since or --limit for more\n`);
}
