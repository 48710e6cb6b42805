import type { MessagePort } from 'node:worker_threads';
import type { WireError } from '../common/errors.js';
import type { InvocationResult } from '../dataplane/types.js';
import type { PriceClassDef } from '../policies/price-classes.js';
import type { ActivationRecord } from '../storage/activation-store.js';
import type { FunctionRecord } from '../storage/store.js';
import type { UsageRow } from '../storage/usage-store.js';

/**
 * The messages between the main thread and the scheduler cores (worker
 * threads), and between cores. Every port carries arrays of these, batched
 * per turn of the event loop (see PortOutbox). Times that cross threads are
 * absolute (performance.timeOrigin + performance.now()): each thread's
 * performance.now() has its own origin.
 */

/** What a core is started with (workerData; the peer ports are transferred with it). */
export interface CoreInit {
  index: number;
  cores: number;
  /** The public address every core listens on with SO_REUSEPORT. */
  host: string;
  port: number;
  /** The main thread's management app, on loopback: requests other than invocations are forwarded there. */
  internalPort: number;
  /** SQLite database (opened read-only here, for API keys). */
  dbPath: string;
  joinTokenHash: string;
  nodesBuffer: SharedArrayBuffer;
  poolBuffer: SharedArrayBuffer;
  classes: PriceClassDef[];
  memoryPrice: number;
  maxQueuePerFunction: number;
  maxWaitMs: number;
  maxInvokeBodyBytes: number;
  maxResponseBytes: number;
  maxManagementBodyBytes: number;
  maxCallDepth: number;
  autoscalerTickMs: number;
  /** Until this absolute time, calls wait for workers to join instead of failing with no_capacity. */
  awaitWorkersUntil: number;
  /** Records of synchronous calls this core keeps. */
  syncActivations: number;
  seed: number;
  logLevel: string;
  /** Ports to the other cores, by core index (undefined at this core's own). */
  peers: (MessagePort | undefined)[];
}

/** A call's request as it crosses threads. */
export interface WireRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
  /**
   * Asked for with X-Price-Class or ctx.invoke's option (an async attempt:
   * its class); the owner settles the class it runs at and admits it.
   */
  priceClass?: string | undefined;
  /** Absolute arrival time. */
  arrivedAt: number;
  /** A chain call: the call it was made from, its depth, and the class it runs at least at. */
  parentId?: string | undefined;
  depth?: number | undefined;
  parentClass?: string | undefined;
}

/** Summary of a function's state on its owner core (views, `baton fn ls`). */
export interface FunctionStatus {
  sandboxes: number;
  ready: number;
  inflight: number;
  queued: number;
}

export interface SandboxRow {
  id: string;
  function: string;
  version: number;
  nodeId: string;
  node: string;
  state: string;
  inflight: number;
  concurrency: number;
  pid?: number;
  createdAt: number;
}

/** One metric's series from one core: label values (in labelNames order) with a value, or histogram counts. */
export interface MetricSeries {
  labels: string[];
  value?: number;
  counts?: number[];
  sum?: number;
  count?: number;
}

export interface CoreMetricsSnapshot {
  series: Record<string, MetricSeries[]>;
  /** CPU time this core's thread has used since it started, seconds (see threadCpuSeconds). */
  cpuSeconds: number;
  /** Faults the process guard caught on this core's thread (each one is a bug). */
  faults: { uncaughtExceptions: number; unhandledRejections: number };
  queuedByRank: number[];
  sandboxesByState: Record<string, number>;
  pendingPlacements: number;
}

/** Questions the main thread asks every core (or one), for the management API and metrics. */
export type CoreQuery =
  | { q: 'functionStatus'; keys: string[] }
  | { q: 'sandboxes'; namespace?: string | undefined }
  | { q: 'nodeStats' }
  | { q: 'status'; namespace?: string | undefined }
  | { q: 'metrics' }
  | { q: 'activation'; namespace: string; id: string }
  | { q: 'activations'; namespace: string; function?: string | undefined; since: number; limit: number }
  | { q: 'holders'; key: string }
  | { q: 'usage' }
  /** Nothing: its answer says the core has handled every message sent to it before. */
  | { q: 'ping' };

export interface ThrottleEntry {
  /** Classes of lower rank than this are refused. */
  servedFromRank: number;
  /** Retry-After seconds per refused rank. */
  retryAfter: number[];
  spent: number;
  monthly: number;
  pace: number;
  ratio: number;
}

export type MainToCore =
  | { t: 'functions'; records: FunctionRecord[] }
  | { t: 'functionRemoved'; key: string }
  | { t: 'nodeJoined'; slot: number; gen: number; id: string; name: string; memoryMb: number; session: string }
  | { t: 'nodeReady'; slot: number }
  | { t: 'nodeDraining'; slot: number }
  | { t: 'nodeLost'; slot: number; reason: string }
  | { t: 'retry' }
  | { t: 'call'; rid: number; key: string; id: string; req: WireRequest; async: boolean }
  | { t: 'query'; rid: number; query: CoreQuery }
  | { t: 'reply'; rid: number; value?: unknown; error?: WireError }
  | { t: 'throttle'; table: Record<string, ThrottleEntry> }
  | { t: 'authReset' }
  | { t: 'wSend'; conn: number; data: Uint8Array }
  | { t: 'wEnd'; conn: number; code: number; reason: string }
  | { t: 'stop' };

export type CoreToMain =
  | { t: 'listening'; linkPort: number }
  | { t: 'failed'; message: string }
  | { t: 'wOpen'; conn: number; remote: string }
  | { t: 'wMsg'; conn: number; data: Uint8Array; binary: boolean }
  | { t: 'wClosed'; conn: number; code: number; reason: string }
  | { t: 'linkUp'; slot: number; gen: number; adopted: number; dropped: number }
  | { t: 'linkDown'; slot: number; gen: number; reason: string }
  | { t: 'nodeLostAck'; slot: number }
  | { t: 'usage'; rows: UsageRow[] }
  | { t: 'gone'; items: [nodeId: string, name: string, functionKey: string][] }
  | { t: 'done'; rid: number; result: InvocationResult }
  | { t: 'asyncAccept'; rid: number; key: string; req: WireRequest; priceClass: string | undefined; callbackUrl?: string | undefined }
  | { t: 'reply'; rid: number; value?: unknown; error?: WireError }
  | { t: 'throttled'; namespace: string; priceClass: string };

export type CoreToCore =
  | { t: 'call'; rid: number; key: string; req: WireRequest }
  | { t: 'done'; rid: number; result: InvocationResult }
  | { t: 'cancel'; rid: number }
  | { t: 'abandon'; rid: number; parentId: string };

export type { ActivationRecord };
