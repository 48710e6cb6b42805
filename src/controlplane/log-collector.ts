import type { Clock } from '../common/clock.js';
import type { LogLine, LogsFrame } from '../protocol/messages.js';
import type { NodeRegistry, WorkerNode } from './node-registry.js';

/** How long one worker may take to answer a logs request before the answer goes without it. */
export const LOGS_WORKER_TIMEOUT_MS = 2_000;
/**
 * How long a worker is still asked for a function's logs after one of its
 * sandboxes there went: longer than a worker keeps a function's log after its
 * last sandbox there went (15 minutes), so nothing a worker still has is missed.
 */
export const LOG_HOLDER_MEMORY_MS = 20 * 60_000;
/** How often workers whose sandboxes went longer ago than that are forgotten. */
const HOLDER_PURGE_MS = 30_000;

export interface LogQuery {
  ns: string;
  fn: string;
  /** Only the lines of this call. */
  callId?: string | undefined;
  /** Epoch ms: only lines at or after. */
  since?: number | undefined;
  /** The newest this many lines (default LOGS_DEFAULT_LIMIT). */
  limit?: number | undefined;
}

export interface LogEntry {
  /** Epoch ms. */
  ts: number;
  /** The call that wrote it; null for lines written outside any call (and for http functions). */
  callId: string | null;
  sandboxId: string;
  /** Name of the worker it ran on. */
  node: string;
  stream: LogLine['stream'];
  line: string;
}

export interface UnansweredWorker {
  node: string;
  nodeId: string;
  reason: string;
}

export interface LogsResult {
  /** Oldest first. */
  lines: LogEntry[];
  /** More lines matched than `limit`: these are the newest. */
  truncated?: boolean;
  /** Workers that held sandboxes of the function and gave no answer: their lines are missing. */
  unanswered?: UnansweredWorker[];
}

export const LOGS_DEFAULT_LIMIT = 1000;
export const LOGS_MAX_LIMIT = 10_000;

interface Holder {
  nodeId: string;
  name: string;
  /** Monotonic ms when it last held a sandbox of the function (when one went, or now for one running there). */
  lastHeld: number;
}

interface Waiting {
  nodeId: string;
  done(frame: LogsFrame): void;
}

/**
 * Merge the workers' answers: oldest first, the newest `limit` lines when
 * there are more. Pure.
 */
export function mergeLogs(answers: { node: string; lines: readonly LogLine[]; truncated?: boolean | undefined }[], limit: number): { lines: LogEntry[]; truncated: boolean } {
  const all: LogEntry[] = [];
  let truncated = false;
  for (const a of answers) {
    if (a.truncated === true) truncated = true;
    for (const l of a.lines) all.push({ ts: l.ts, callId: l.callId ?? null, sandboxId: l.sandboxId, node: a.node, stream: l.stream, line: l.line });
  }
  // stable: lines of one worker with equal times keep the order it wrote them in
  all.sort((x, y) => x.ts - y.ts);
  if (all.length > limit) {
    truncated = true;
    all.splice(0, all.length - limit);
  }
  return { lines: all, truncated };
}

/**
 * Gathers a function's log lines from the workers that hold them: those
 * running its sandboxes now and those that ran one recently (a worker keeps
 * the log for a while after the sandbox went). Asks them all at once over
 * their links and answers with what came back within the per-worker timeout,
 * naming the workers that did not answer.
 *
 * Only the workers where sandboxes went are remembered here; those running
 * one are asked of the scheduler core that owns the function when logs are
 * asked for. Remembering
 * every running sandbox's worker cost about 100 B of heap per sandbox, a
 * third of the control plane's budget for one.
 */
export class LogCollector {
  /** Function key → the workers where its sandboxes went recently, by node id. */
  private readonly holders = new Map<string, Map<string, Holder>>();
  private readonly waiting = new Map<number, Waiting>();
  private nextReq = 1;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly o: {
      nodes: NodeRegistry;
      /** The workers running a sandbox of the function now: [node id, name] (its owner core knows). */
      running(functionKey: string): Promise<[string, string][]>;
      clock: Clock;
      workerTimeoutMs?: number;
    },
  ) {
    this.timer = setInterval(() => this.purge(), HOLDER_PURGE_MS);
    this.timer.unref();
  }

  /** A sandbox of the function went from this worker: the worker keeps the lines it wrote for a while. */
  sandboxGone(nodeId: string, name: string, functionKey: string): void {
    let byNode = this.holders.get(functionKey);
    if (byNode === undefined) {
      byNode = new Map();
      this.holders.set(functionKey, byNode);
    }
    const h = byNode.get(nodeId);
    if (h === undefined) byNode.set(nodeId, { nodeId, name, lastHeld: this.o.clock.now() });
    else {
      h.lastHeld = this.o.clock.now();
      h.name = name;
    }
  }

  /** A worker's `logs` frame. */
  answer(node: WorkerNode, frame: LogsFrame): void {
    const w = this.waiting.get(frame.reqId);
    // only the worker asked may answer its request
    if (w === undefined || w.nodeId !== node.id) return;
    this.waiting.delete(frame.reqId);
    w.done(frame);
  }

  async fetch(q: LogQuery): Promise<LogsResult> {
    const functionKey = `${q.ns}/${q.fn}`;
    const limit = Math.min(q.limit ?? LOGS_DEFAULT_LIMIT, LOGS_MAX_LIMIT);
    const timeoutMs = this.o.workerTimeoutMs ?? LOGS_WORKER_TIMEOUT_MS;
    const unanswered: UnansweredWorker[] = [];
    const asks: Promise<{ node: string; lines: LogLine[]; truncated?: boolean | undefined } | undefined>[] = [];
    for (const h of await this.holdersOf(functionKey)) {
      const node = this.o.nodes.get(h.nodeId);
      const name = node?.name ?? h.name;
      if (node === undefined || node.status === 'disconnected' || node.status === 'dead') {
        unanswered.push({ node: name, nodeId: h.nodeId, reason: 'not connected' });
        continue;
      }
      const reqId = this.nextReq;
      this.nextReq = this.nextReq >= 2 ** 31 ? 1 : this.nextReq + 1;
      asks.push(
        new Promise((resolve) => {
          const timer = setTimeout(() => {
            this.waiting.delete(reqId);
            unanswered.push({ node: name, nodeId: h.nodeId, reason: `no answer within ${timeoutMs} ms` });
            resolve(undefined);
          }, timeoutMs);
          this.waiting.set(reqId, {
            nodeId: h.nodeId,
            done: (f) => {
              clearTimeout(timer);
              resolve({ node: name, lines: f.lines, truncated: f.truncated });
            },
          });
          const sent = node.send({ t: 'getLogs', reqId, functionKey, limit, ...(q.callId === undefined ? {} : { callId: q.callId }), ...(q.since === undefined ? {} : { since: q.since }) });
          if (!sent) {
            clearTimeout(timer);
            this.waiting.delete(reqId);
            unanswered.push({ node: name, nodeId: h.nodeId, reason: 'not connected' });
            resolve(undefined);
          }
        }),
      );
    }
    const answers = (await Promise.all(asks)).filter((a) => a !== undefined);
    const merged = mergeLogs(answers, limit);
    const out: LogsResult = { lines: merged.lines };
    if (merged.truncated) out.truncated = true;
    if (unanswered.length > 0) out.unanswered = unanswered.sort((a, b) => a.node.localeCompare(b.node));
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The workers to ask: those with a sandbox of the function now, and those where one went recently. */
  private async holdersOf(functionKey: string): Promise<Holder[]> {
    const running = await this.o.running(functionKey);
    const now = this.o.clock.now();
    const out = new Map<string, Holder>();
    for (const [nodeId, name] of running) if (!out.has(nodeId)) out.set(nodeId, { nodeId, name, lastHeld: now });
    const byNode = this.holders.get(functionKey);
    if (byNode !== undefined) {
      for (const [id, h] of byNode) {
        if (now - h.lastHeld > LOG_HOLDER_MEMORY_MS) byNode.delete(id);
        else if (!out.has(id)) out.set(id, h);
      }
      if (byNode.size === 0) this.holders.delete(functionKey);
    }
    return [...out.values()];
  }

  /** Forget the workers whose sandboxes went longer ago than they keep the lines. */
  private purge(): void {
    const now = this.o.clock.now();
    for (const [key, byNode] of this.holders) {
      for (const [id, h] of byNode) if (now - h.lastHeld > LOG_HOLDER_MEMORY_MS) byNode.delete(id);
      if (byNode.size === 0) this.holders.delete(key);
    }
  }
}
