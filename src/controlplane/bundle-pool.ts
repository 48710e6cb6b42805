import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { BundleLimits, BundleSummary } from '../common/bundle.js';
import { compiledSibling } from '../common/compiled-path.js';
import { BatonError } from '../common/errors.js';
import type { BundleTask, BundleTaskReply } from './bundle-task.js';

export interface BundlePoolOptions {
  /** Threads at most (default: 1 on a 2-core machine, 2 from 4 cores up). */
  maxThreads?: number;
  /** Checks waiting for a thread before deploys are refused with 503 (default 8). */
  maxQueue?: number;
  /** An idle thread exits after this long (default 60 s); the next deploy starts one again. */
  idleTimeoutMs?: number;
}

/**
 * Checks uploaded bundles on a small worker-thread pool (piscina). Decoding,
 * inflating a bundle of tens of MB and hashing it take hundreds of ms of CPU;
 * on the main thread that would stall every invocation and heartbeat.
 * No thread starts until the first bundle arrives.
 */
export class BundlePool {
  private pool: Piscina | undefined;
  private closed = false;
  private readonly maxThreads: number;
  private readonly maxQueue: number;
  private readonly idleTimeoutMs: number;

  constructor(opts: BundlePoolOptions = {}) {
    this.maxThreads = opts.maxThreads ?? Math.max(1, Math.min(2, Math.floor(availableParallelism() / 2)));
    this.maxQueue = opts.maxQueue ?? 8;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    if (!Number.isInteger(this.maxThreads) || this.maxThreads < 1) throw new RangeError(`maxThreads must be a positive integer, got ${this.maxThreads}`);
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 0) throw new RangeError(`maxQueue must be a non-negative integer, got ${this.maxQueue}`);
  }

  /** Decode and check a base64 bundle; resolves to its bytes and summary, or rejects with the BatonError naming the problem. */
  async check(bundle: string, limits: BundleLimits, handler?: string): Promise<{ data: Uint8Array; summary: BundleSummary }> {
    if (this.closed) throw new BatonError('overloaded', 'the control plane is stopping: bundles are no longer accepted');
    const pool = (this.pool ??= new Piscina({
      filename: pathToFileURL(compiledSibling('bundle-task.js', import.meta.url)).href,
      minThreads: 0,
      maxThreads: this.maxThreads,
      maxQueue: this.maxQueue,
      idleTimeout: this.idleTimeoutMs,
    }));
    if (pool.queueSize >= this.maxQueue) {
      throw new BatonError('overloaded', `too many bundles are being checked at once (${this.maxQueue} waiting); retry shortly`, { retryAfter: 1 });
    }
    const task: BundleTask = handler === undefined ? { bundle, limits } : { bundle, limits, handler };
    const reply = (await pool.run(task)) as BundleTaskReply;
    if (!reply.ok) throw BatonError.fromWire(reply.error);
    return { data: reply.data, summary: reply.summary };
  }

  /** Stop the threads; checks still running fail. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) await pool.destroy();
  }
}
