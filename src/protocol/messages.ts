import { z } from 'zod';

/**
 * Control plane <-> worker protocol. Every frame is one msgpack-encoded object
 * with a `t` (type) field. Frames are validated with these schemas before use;
 * a frame that fails validation closes the connection that sent it.
 *
 * Handshake: the worker opens the WebSocket at WORKER_PATH with
 * `Authorization: Bearer <joinToken>` and sends `hello` first, carrying
 * PROTOCOL_VERSION. The control plane answers `welcome` or closes with
 * CloseCode.* and a reason.
 */
export const PROTOCOL_VERSION = 3;
export const WORKER_PATH = '/v1/workers/connect';
/**
 * Data links. The control plane runs N scheduler cores (worker threads); each
 * owns a shard of the functions and listens for workers on a port of its own,
 * named in the welcome. After the welcome the worker opens one WebSocket per
 * core at LINK_PATH on that port (same host, same join token) and sends
 * `linkHello`; the core answers `linkWelcome`. From then on every frame about a
 * sandbox or a call travels on the link of the core that owns the sandbox's
 * function (`ownerCore` in shard.ts): create, delete, invoke and callResult
 * from the core; sandboxReady, sandboxFailed, sandboxGone, result and chain
 * `call` frames from the worker. The first connection (the control link)
 * carries hello/welcome, heartbeats, draining, bundles and logs. If any link
 * of a worker closes, the worker closes them all and joins again.
 */
export const LINK_PATH = '/v1/workers/link';

export const CloseCode = {
  normal: 1000,
  badFrame: 4400,
  unauthorized: 4401,
  wrongVersion: 4426,
  replaced: 4409,
  shuttingDown: 4503,
} as const;

const id = z.string().min(1).max(128);
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, { message: 'expected binary data' });
const headers = z.record(z.string(), z.string());
const wireError = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** What a worker needs to know to create a sandbox for a function version. */
export const sandboxSpec = z.object({
  /** `<namespace>/<name>` */
  functionKey: id,
  /** Monotonic function version; a sandbox of an older version is never reused. */
  version: z.number().int().nonnegative(),
  /** Identity of this incarnation of the function: a new one after delete and re-create. */
  incarnation: id,
  runtime: z.enum(['node', 'http']),
  handler: z.string().optional(),
  command: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()),
  concurrency: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
  /** sha256 of the bundle; empty for functions without code (http commands on the PATH). */
  bundleHash: z.string(),
  priceClass: z.string(),
});
export type SandboxSpec = z.infer<typeof sandboxSpec>;

export const sandboxReport = z.object({
  sandboxId: id,
  functionKey: id,
  version: z.number().int().nonnegative(),
  incarnation: id,
  /** Invocations running on it right now. */
  inflight: z.number().int().nonnegative(),
  /** Host pid of its top process, for operators (absent for emulated sandboxes). */
  pid: z.number().int().positive().optional(),
});
export type SandboxReport = z.infer<typeof sandboxReport>;

// ---- worker -> control plane ----
export const helloFrame = z.object({
  t: z.literal('hello'),
  protocol: z.number().int(),
  nodeId: id,
  name: z.string().max(256),
  cores: z.number().int().positive(),
  memoryMb: z.number().int().positive(),
  runtime: z.enum(['process', 'emulated']),
  sandboxes: z.array(sandboxReport),
});
export const heartbeatFrame = z.object({
  t: z.literal('heartbeat'),
  /** Memory this worker offers its sandboxes that they do not use now, MB. */
  freeMemoryMb: z.number().nonnegative(),
  sandboxes: z.number().int().nonnegative(),
  /** Sandboxes running on its cores, by price class rank (cheapest first). */
  busyByRank: z.array(z.number().int().nonnegative()).max(64).optional(),
  /** Calls held on the worker waiting for a core. */
  waiting: z.number().int().nonnegative().optional(),
  /** Machine-scheduler preemptions so far. */
  preemptions: z.number().int().nonnegative().optional(),
});
export const sandboxReadyFrame = z.object({
  t: z.literal('sandboxReady'),
  sandboxId: id,
  /** Time the worker spent creating it (bundle fetch + start + readiness). */
  createMs: z.number().nonnegative(),
  /** Host pid of its top process, for operators (absent for emulated sandboxes). */
  pid: z.number().int().positive().optional(),
});
export const sandboxFailedFrame = z.object({
  t: z.literal('sandboxFailed'),
  sandboxId: id,
  error: wireError,
});
/** A sandbox disappeared on its own (crashed, killed by the OS). */
export const sandboxGoneFrame = z.object({
  t: z.literal('sandboxGone'),
  sandboxId: id,
  reason: z.string(),
});
export const resultFrame = z.object({
  t: z.literal('result'),
  callId: id,
  /** The sandbox that ran it (frees its slot even when the call is unknown, e.g. adopted after a restart). */
  sandboxId: id,
  status: z.number().int().min(100).max(599),
  headers,
  body: bytes,
  /** Execution time inside the sandbox. */
  execMs: z.number().nonnegative(),
  /** Metering: CPU time of the call, its memory × time (MB·ms), time frozen by higher classes and time held for a core, ms. */
  cpuMs: z.number().nonnegative().optional(),
  mbMs: z.number().nonnegative().optional(),
  preemptMs: z.number().nonnegative().optional(),
  waitMs: z.number().nonnegative().optional(),
  error: wireError.optional(),
});
export const bundleRequestFrame = z.object({ t: z.literal('getBundle'), hash: z.string().min(1).max(128) });
/** The worker is stopping (SIGTERM): place nothing new on it; it finishes its calls, then exits. */
export const drainingFrame = z.object({ t: z.literal('draining'), timeoutMs: z.number().nonnegative() });
/**
 * A call chain: a function running in one of this worker's sandboxes calls
 * another function of its namespace (`ctx.invoke`). The control plane answers
 * with `callResult` carrying the same reqId.
 */
export const chainCallFrame = z.object({
  t: z.literal('call'),
  reqId: z.number().int().nonnegative(),
  /** The call the request is made from: its namespace, class and depth govern the new call. */
  parentCallId: id,
  function: z.string().min(1).max(128),
  method: z.string().min(1).max(16),
  path: z.string().max(8192),
  headers,
  body: bytes,
  /** Asked-for class; the call runs at least at its parent's class. */
  priceClass: z.string().max(64).optional(),
});
/** Log lines a worker holds, answering a `getLogs`. */
export const logLine = z.object({
  /** Epoch ms. */
  ts: z.number(),
  sandboxId: id,
  callId: id.optional(),
  stream: z.enum(['stdout', 'stderr']),
  line: z.string(),
});
export type LogLine = z.infer<typeof logLine>;
export const logsFrame = z.object({ t: z.literal('logs'), reqId: z.number().int().nonnegative(), lines: z.array(logLine), truncated: z.boolean().optional() });

/** First frame on a data link: which worker, which control session, which core, and its sandboxes of that core's functions. */
export const linkHelloFrame = z.object({
  t: z.literal('linkHello'),
  protocol: z.number().int(),
  nodeId: id,
  /** The session of the welcome this link belongs to. */
  session: id,
  core: z.number().int().nonnegative().max(1023),
  /** The worker's sandboxes whose functions this core owns, for adoption after a control-plane restart. */
  sandboxes: z.array(sandboxReport),
});

export const workerFrame = z.discriminatedUnion('t', [
  helloFrame,
  linkHelloFrame,
  heartbeatFrame,
  sandboxReadyFrame,
  sandboxFailedFrame,
  sandboxGoneFrame,
  resultFrame,
  bundleRequestFrame,
  drainingFrame,
  chainCallFrame,
  logsFrame,
]);
export type WorkerFrame = z.infer<typeof workerFrame>;
export type HelloFrame = z.infer<typeof helloFrame>;
export type LinkHelloFrame = z.infer<typeof linkHelloFrame>;
export type ResultFrame = z.infer<typeof resultFrame>;

// ---- control plane -> worker ----
export const welcomeFrame = z.object({
  t: z.literal('welcome'),
  protocol: z.number().int(),
  nodeId: id,
  heartbeatMs: z.number().int().positive(),
  /** Largest response body a call may return; a larger one fails that call with response_too_large. */
  maxResponseBytes: z.number().int().positive(),
  /** Largest request body of a chain `call` (the invocation body limit); the worker refuses bigger ones before they reach the link. */
  maxCallBodyBytes: z.number().int().positive().optional(),
  /** The price classes, cheapest first: the machine scheduler's ranks. */
  classes: z.array(z.string()).min(1).max(64),
  /** Sandboxes from the hello report that the control plane did not adopt; the worker deletes them. */
  drop: z.array(id),
  /** This connection's session: each data link's linkHello names it. */
  session: id,
  /** The scheduler cores' data-link ports, core 0 first: the worker opens a link to each (same host as this connection). */
  links: z.array(z.object({ core: z.number().int().nonnegative().max(1023), port: z.number().int().min(1).max(65535) })).min(1).max(1024),
});
/** A core accepted a data link; `drop`: sandboxes of its linkHello report it did not adopt (the worker deletes them). */
export const linkWelcomeFrame = z.object({ t: z.literal('linkWelcome'), core: z.number().int().nonnegative(), drop: z.array(id) });
export const createFrame = z.object({ t: z.literal('create'), sandboxId: id, spec: sandboxSpec });
export const deleteFrame = z.object({ t: z.literal('delete'), sandboxId: id });
export const invokeFrame = z.object({
  t: z.literal('invoke'),
  callId: id,
  sandboxId: id,
  method: z.string(),
  path: z.string(),
  headers,
  body: bytes,
  timeoutMs: z.number().int().positive(),
  priceClass: z.string(),
  /** The call this one was made from (`ctx.invoke`), shown to the callee as `ctx.parentId`. */
  parentId: id.optional(),
});
export const bundleFrame = z.object({
  t: z.literal('bundle'),
  hash: z.string(),
  data: bytes.optional(),
  error: wireError.optional(),
});

/** The answer to a worker's chain `call`. */
export const callResultFrame = z.object({
  t: z.literal('callResult'),
  reqId: z.number().int().nonnegative(),
  /** The new call's id (its activation), when it was accepted. */
  callId: id.optional(),
  status: z.number().int().min(100).max(599),
  headers,
  body: bytes,
  error: wireError.optional(),
});
/** Ask a worker for the log lines it holds of a function (optionally one call, optionally since a time). */
export const getLogsFrame = z.object({
  t: z.literal('getLogs'),
  reqId: z.number().int().nonnegative(),
  functionKey: id,
  callId: id.optional(),
  /** Epoch ms: only lines at or after. */
  since: z.number().optional(),
  limit: z.number().int().positive().max(100_000),
});

export const controlFrame = z.discriminatedUnion('t', [welcomeFrame, linkWelcomeFrame, createFrame, deleteFrame, invokeFrame, bundleFrame, callResultFrame, getLogsFrame]);
export type ControlFrame = z.infer<typeof controlFrame>;
export type CreateFrame = z.infer<typeof createFrame>;
export type WelcomeFrame = z.infer<typeof welcomeFrame>;
export type LinkWelcomeFrame = z.infer<typeof linkWelcomeFrame>;
export type InvokeFrame = z.infer<typeof invokeFrame>;
export type ChainCallFrame = z.infer<typeof chainCallFrame>;
export type CallResultFrame = z.infer<typeof callResultFrame>;
export type GetLogsFrame = z.infer<typeof getLogsFrame>;
export type LogsFrame = z.infer<typeof logsFrame>;
