import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { compiledSibling } from '../common/compiled-path.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { InvocationResult } from '../dataplane/types.js';
import { errorOfReply, errorResult } from '../scheduler/core-calls.js';
import type { CoreInit, CoreQuery, CoreToMain, MainToCore, WireRequest } from '../scheduler/core-messages.js';
import { PendingReplies, PortOutbox, receive } from '../scheduler/port-outbox.js';
import { ownerCore } from '../protocol/shard.js';

export type CoreInitShared = Omit<CoreInit, 'index' | 'cores' | 'peers'>;

export interface CoreHostOptions {
  count: number;
  init: CoreInitShared;
  log: Logger;
  /** Everything a core sends that is not a reply to the host's own requests. */
  onMessage(core: number, m: CoreToMain): void;
  /** A core died or could not start: the control plane cannot go on without it. */
  onFatal(core: number, reason: string): void;
}

/**
 * The main thread's side of the scheduler cores: starts N worker threads
 * (src/scheduler/core-thread.ts), each with a MessagePort to every other
 * core, and carries the main thread's messages to them — broadcasts
 * (functions, workers joining and leaving), questions for the management API
 * (`query`), and the attempts of async calls (`invoke`), each answered once.
 * Plain worker_threads, not a task pool: a core is long-lived, owns state
 * and sockets, and is addressed by index.
 */
export class CoreHost {
  readonly count: number;
  /** Each core's port for worker data links, by core index. */
  readonly linkPorts: number[] = [];
  private readonly workers: Worker[] = [];
  private readonly out: PortOutbox<MainToCore>[] = [];
  private readonly replies = new PendingReplies();
  private readonly calls = new Map<number, (r: InvocationResult) => void>();
  private nextCall = 1;
  private stopping = false;

  private constructor(private readonly o: CoreHostOptions) {
    this.count = o.count;
  }

  /** Start the cores and wait until every one listens (or one fails: then the others are stopped and this throws). */
  static async start(o: CoreHostOptions): Promise<CoreHost> {
    if (!Number.isInteger(o.count) || o.count < 1 || o.count > 256) throw new RangeError(`schedulerThreads must be an integer from 1 to 256, got ${o.count}`);
    const host = new CoreHost(o);
    const ports: (MessagePort | undefined)[][] = Array.from({ length: o.count }, () => new Array<MessagePort | undefined>(o.count).fill(undefined));
    for (let i = 0; i < o.count; i++) {
      for (let j = i + 1; j < o.count; j++) {
        const ch = new MessageChannel();
        (ports[i] as (MessagePort | undefined)[])[j] = ch.port1;
        (ports[j] as (MessagePort | undefined)[])[i] = ch.port2;
      }
    }
    const filename = compiledSibling('../scheduler/core-thread.js', import.meta.url);
    const listening = Array.from({ length: o.count }, () => {
      let settle: { resolve: (port: number) => void; reject: (e: Error) => void } | undefined;
      const p = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
      return { p, settle: settle as { resolve: (port: number) => void; reject: (e: Error) => void } };
    });
    for (let i = 0; i < o.count; i++) {
      const peers = ports[i] as (MessagePort | undefined)[];
      const init: CoreInit = { ...o.init, index: i, cores: o.count, peers };
      const w = new Worker(filename, { workerData: init, transferList: peers.filter((p): p is MessagePort => p !== undefined), stdout: false, stderr: false });
      host.workers.push(w);
      host.out.push(new PortOutbox<MainToCore>(w));
      const started = listening[i] as (typeof listening)[number];
      w.on('message', (data: unknown) =>
        receive<CoreToMain>(
          data,
          (m) => {
            if (m.t === 'listening') started.settle.resolve(m.linkPort);
            else if (m.t === 'failed') started.settle.reject(new BatonError('conflict', m.message));
            else host.handle(i, m);
          },
          (e, m) => o.log.error({ err: e, t: m.t, core: i }, 'error handling a message from a scheduler core'),
        ),
      );
      w.on('error', (e) => {
        o.log.fatal({ err: e, core: i }, 'scheduler core crashed');
        started.settle.reject(e);
        if (!host.stopping) o.onFatal(i, e.message);
      });
      w.on('exit', (code) => {
        started.settle.reject(new Error(`scheduler core ${i} exited with code ${code} before it listened`));
        if (!host.stopping) o.onFatal(i, `exited with code ${code}`);
      });
    }
    const results = await Promise.allSettled(listening.map((l) => l.p));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      await host.stop();
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    for (const r of results) host.linkPorts.push((r as PromiseFulfilledResult<number>).value);
    return host;
  }

  private handle(core: number, m: CoreToMain): void {
    if (m.t === 'reply') {
      this.replies.settle(m.rid, m.value, m.error === undefined ? undefined : errorOfReply(m.error));
      return;
    }
    if (m.t === 'done') {
      const reply = this.calls.get(m.rid);
      if (reply === undefined) return;
      this.calls.delete(m.rid);
      reply(m.result);
      return;
    }
    this.o.onMessage(core, m);
  }

  send(core: number, m: MainToCore): void {
    this.out[core]?.send(m);
  }

  broadcast(m: MainToCore): void {
    for (const o of this.out) o.send(m);
  }

  /** Ask one core. */
  query<T>(core: number, q: CoreQuery): Promise<T> {
    const { rid, answer } = this.replies.open<T>();
    this.send(core, { t: 'query', rid, query: q });
    return answer;
  }

  /** Ask every core; answers in core order. */
  queryAll<T>(q: CoreQuery): Promise<T[]> {
    return Promise.all(this.out.map((_, i) => this.query<T>(i, q)));
  }

  /** The core that owns a function. */
  ownerOf(key: string): number {
    return ownerCore(key, this.count);
  }

  /** Run an async call's attempt on the core that owns its function; `reply` once. */
  invoke(key: string, id: string, req: WireRequest, reply: (r: InvocationResult) => void): void {
    if (this.stopping) {
      reply(errorResult(new BatonError('overloaded', 'the control plane is shutting down', { retryAfter: 1 }), id));
      return;
    }
    const rid = this.nextCall;
    this.nextCall = this.nextCall >= 2 ** 31 ? 1 : this.nextCall + 1;
    this.calls.set(rid, reply);
    this.send(this.ownerOf(key), { t: 'call', rid, key, id, req, async: true });
  }

  /** Stop every core (each closes its sockets, then its thread ends); waits up to `timeoutMs`. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const exited = this.workers.map((w) => new Promise<void>((r) => (w.threadId === -1 ? r() : w.once('exit', () => r()))));
    for (const o of this.out) {
      o.send({ t: 'stop' });
      o.close();
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), timeoutMs)));
    const r = await Promise.race([Promise.all(exited), late]);
    if (timer !== undefined) clearTimeout(timer);
    if (r === 'late') this.o.log.warn({ timeoutMs }, 'scheduler cores did not stop in time');
    const pending = [...this.calls.values()];
    this.calls.clear();
    for (const reply of pending) reply(errorResult(new BatonError('overloaded', 'the control plane is shutting down', { retryAfter: 1 })));
    this.replies.failAll(new BatonError('overloaded', 'the control plane is shutting down', { retryAfter: 1 }));
  }
}
