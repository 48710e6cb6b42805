import type { WireError } from '../common/errors.js';
import type { Queued } from '../policies/class-queue.js';
import type { FunctionRecord } from '../storage/store.js';
import type { ControlFrame } from '../protocol/messages.js';
import type { Deadline } from './deadlines.js';
import type { FunctionRuntime } from './function-runtime.js';

/**
 * joining: said hello, its data links to the scheduler cores are being opened;
 * ready: takes new sandboxes; draining: finishing its calls before it stops (SIGTERM).
 */
export type NodeStatus = 'joining' | 'ready' | 'draining' | 'disconnected' | 'dead';

/**
 * A worker as a scheduler core's data plane sees it (NodeMirror); what the
 * main thread knows of it from its control link is a WorkerNode
 * (node-registry.ts), and what every core shares is its slot in SharedNodes.
 */
export interface NodeState {
  id: string;
  name: string;
  status: NodeStatus;
  /** When it last sent a heartbeat (monotonic ms of this thread). */
  lastHeartbeat: number;
  /** Its sandboxes by id: the control plane's only index of sandboxes by id (every frame about one comes from its worker). */
  sandboxes: Map<string, SandboxState>;
  inflight: number;
  /** Bundle hashes this worker has fetched (for code locality). */
  bundles: Set<string>;
  /**
   * Sandboxes with calls in flight, by the rank of their highest call (the
   * control plane's own view, exact for what it dispatched): how many of the
   * node's cores run which classes.
   */
  busyByRank: number[];
  /** Σ busyByRank. */
  busy: number;
  send(frame: ControlFrame): boolean;
}

export type SandboxStatus = 'creating' | 'ready' | 'draining' | 'deleting';

/**
 * A sandbox as the control plane sees it. There can be hundreds of thousands:
 * the control plane's budget is 300 B of heap for each (bench memory), so it
 * keeps no field that another one or its function can give (its function's
 * key is `fn.key`, its version and concurrency are its record's), declares
 * every field when the record is made (a field added later costs an extra
 * backing store) and holds no collection of its own. It sits in three: its
 * worker's index by id, its function's list (linked through its own fields)
 * and, while it has free slots, its function's free list.
 */
export interface SandboxState {
  id: string;
  /** The function incarnation it belongs to (kept even after the function is deleted); its key is `fn.key`. */
  fn: FunctionRuntime;
  /** Its neighbours among its function's sandboxes (see function-sandboxes.ts). */
  prevOfFn: SandboxState | undefined;
  nextOfFn: SandboxState | undefined;
  /**
   * The definition it runs (its function's record when it was made): its
   * version is `record.version`, its slots `record.spec.concurrency`.
   */
  record: FunctionRecord;
  node: NodeState;
  status: SandboxStatus;
  /** Calls holding its slots (with those its worker reported running when it was adopted, see Dispatcher.phantoms). */
  inflight: number;
  /**
   * Newest of the calls running on it (linked through the calls, see
   * sandbox-calls.ts), so they can be failed if the sandbox or its worker goes away.
   */
  firstCall: Call | undefined;
  /** Rank of its highest call in flight, -1 when it has none (see NodeState.busyByRank). */
  rank: number;
  /** The worker core it holds in the shared capacity (Dispatcher CoreClaims), -1 when none. */
  core: number;
  /** Index in its function's free list, -1 when not in it. */
  freeIndex: number;
  /** When the record was made (wall-clock ms, for operators). */
  createdAt: number;
  /** Host pid the worker reported (operators' view only), undefined until it does. */
  pid: number | undefined;
  /**
   * When it last took a call or, before its first, when it was asked for
   * (monotonic ms): the order in which idle sandboxes go, and, while it is
   * still being created, how long it has been starting.
   */
  lastUsed: number;
}

export interface InvocationRequest {
  method: string;
  /** Path after /function/{fn}, at least "/". Includes the query string. */
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
  priceClass: string;
  /** Rank of priceClass (0 = cheapest), filled in by the dispatcher. */
  rank?: number;
  /** The call this one was made from (call chains), and how deep in its chain it is (0 = from a client). */
  parentId?: string;
  depth?: number;
  /** An attempt of an accepted async call (its record is kept by the async invoker). */
  async?: boolean;
  /** When the request reached the control plane (monotonic ms), if before the dispatcher saw it. */
  arrivedAt?: number;
}

/**
 * A call on its way to the scheduler core that owns its function: its class
 * may not be settled yet (undefined: the owner settles it, from the
 * function's own class, and admits it against the budget).
 */
export type RoutedRequest = Omit<InvocationRequest, 'priceClass'> & { priceClass: string | undefined };

/** What a call consumed, as its worker measured it. */
export interface CallUsage {
  cpuMs: number;
  /** Memory × time, MB·ms (GB-seconds = mbMs / 1024 / 1000). */
  mbMs: number;
  /** Time frozen by higher classes (not billed). */
  preemptMs: number;
  /** Time held on the worker for a core before it started. */
  waitMs: number;
}

export interface InvocationResult {
  callId: string;
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
  error?: WireError;
  timing: CallTiming;
  /** Present when a worker ran the call. */
  usage?: CallUsage;
  /** What the call cost (set by the control plane when it is billed). */
  cost?: number;
  sandboxId?: string;
  nodeId?: string;
}

export interface CallTiming {
  /** Time spent waiting in the function's queue. */
  queueMs: number;
  /** Control-plane overhead: arrival to dispatch, less queue wait for a warm slot and less sandbox creation. */
  schedMs: number;
  /** Sandbox creation time this call waited for (0 when warm). */
  coldMs: number;
  execMs: number;
  totalMs: number;
}

/** A chain call whose callee another scheduler core owns (see Dispatcher.remoteChild). */
export interface RemoteChild {
  /** The parent ended: fail the call if it has not started (it is not worth running any more). */
  abandon(): void;
}

/** One invocation from arrival to response. */
export interface Call {
  id: string;
  fn: FunctionRecord;
  req: InvocationRequest;
  arrivedAt: number;
  enqueuedAt: number;
  dispatchedAt: number;
  /** Creation time of the sandbox this call caused or waited for. */
  coldMs: number;
  sandbox: SandboxState | undefined;
  /** Its entry in the function's queue while it waits. */
  queueEntry: Queued<Call> | undefined;
  /** Its neighbours among the calls running on its sandbox (see sandbox-calls.ts). */
  prevOnSandbox: Call | undefined;
  nextOnSandbox: Call | undefined;
  done: boolean;
  /** Its wait or execution deadline. */
  timer: Deadline | undefined;
  /** Chain calls made from this call that have not answered yet: while any is out it waits, it holds no core. */
  awaiting?: number;
  /** Chain calls made from this call that have not answered yet (those still queued fail when it ends). */
  children?: Set<Call | RemoteChild>;
  reply(result: InvocationResult): void;
}
