import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Counter } from 'prom-client';
import uws from 'uWebSockets.js';
import { systemClock, type Clock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import { randomSecret, sha256Hex } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import { processFaults } from '../common/process-guard.js';
import { Dispatcher } from '../dataplane/dispatcher.js';
import { DEFAULT_PRICE_CLASSES, PriceClassSet, type PriceClassDef } from '../policies/price-classes.js';
import { createRng } from '../policies/rng.js';
import type { NodeState } from '../dataplane/types.js';
import { SqliteStore } from '../storage/sqlite-store.js';
import { Authenticator } from './auth.js';
import { AutoscalerLoop } from './autoscaler-loop.js';
import { ChainCalls, DEFAULT_MAX_CALL_DEPTH } from './chain-calls.js';
import { readCredentials, writeCredentials, type Credentials } from './credentials.js';
import { FunctionService } from './function-service.js';
import { listenExclusive } from './listen.js';
import { LogCollector } from './log-collector.js';
import { mountLogsApi } from './logs-api.js';
import { Exchange } from './http-kit.js';
import { mountInvokeApi } from './invoke-api.js';
import { mountManagementApi } from './management-api.js';
import { mountActivationsApi } from './activations-api.js';
import { ActivationLog, recordOf } from './activations.js';
import { AsyncInvoker } from './async-invocations.js';
import { BudgetGate } from './budget-gate.js';
import { UsageLedger } from './usage-ledger.js';
import { ActivationStore } from '../storage/activation-store.js';
import { UsageStore } from '../storage/usage-store.js';
import { MAX_FRAME_BYTES } from '../protocol/codec.js';
import { ControlPlaneMetrics } from './metrics.js';
import { NodeRegistry } from './node-registry.js';
import { Placement } from './placement.js';
import { RouteTable } from './routes.js';
import { WorkerGateway } from './worker-gateway.js';

export interface ControlPlaneOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  dataDir: string;
  logger: Logger;
  /** Admin API key to accept (else the one in credentials.json, else a new one). */
  apiKey?: string;
  /** Worker join token (else the one in credentials.json, else a new one). */
  joinToken?: string;
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  autoscalerTickMs?: number;
  maxQueuePerFunction?: number;
  /** How long a call may wait for a sandbox, apart from its execution timeout (default 30 s). */
  maxWaitMs?: number;
  maxInvokeBodyBytes?: number;
  /** Largest response body of a call (default 16 MiB); larger ones fail that call with 502 response_too_large. */
  maxResponseBytes?: number;
  maxBundleBytes?: number;
  /** How long after start calls wait for workers to join instead of failing with 503. */
  workerGraceMs?: number;
  /** The fixed set of price classes (default batch 0.5, standard 1, interactive 1.5, critical 2, µ¢ per CPU-second). */
  priceClasses?: readonly PriceClassDef[];
  /** Price of a GB-second of memory, the same for every class (default 0.25 µ¢). */
  memoryPrice?: number;
  /** Async calls accepted and not yet ended before new ones get 503 (default 10,000). */
  maxPendingAsync?: number;
  /** How long records and results of async calls are kept (default 7 days). */
  activationRetentionMs?: number;
  /** Records of synchronous calls kept in memory (default 10,000). */
  syncActivations?: number;
  /** Deepest call a call chain (`ctx.invoke`) may make; a client's call is at depth 0 (default 16). */
  maxCallDepth?: number;
  /** Seed of the random choices in placement (default: the start time). */
  seed?: number;
  /** How long to keep retrying when the port is blocked but nothing listens there (TIME_WAIT after a crash). */
  listenTimeoutMs?: number;
  clock?: Clock;
}

/** `/healthz`, `/readyz` (no auth) and `/metrics`, each answering GET and HEAD. */
function mountProbes(app: uws.TemplatedApp, d: { nodes: NodeRegistry; metrics: ControlPlaneMetrics; log: Logger }): void {
  new Counter({
    name: 'baton_process_faults_total',
    help: 'Uncaught exceptions and unhandled rejections the process guard logged and survived (each one is a bug)',
    labelNames: ['kind'],
    registers: [d.metrics.registry],
    collect() {
      const f = processFaults();
      this.reset();
      this.inc({ kind: 'uncaught_exception' }, f.uncaughtExceptions);
      this.inc({ kind: 'unhandled_rejection' }, f.unhandledRejections);
    },
  });
  for (const method of ['get', 'head'] as const) {
    const head = method === 'head';
    app[method]('/healthz', (res) => new Exchange(res, head).json(200, { status: 'ok' }));
    app[method]('/readyz', (res) => {
      const ready = d.nodes.readyNodes().length;
      new Exchange(res, head).json(ready > 0 ? 200 : 503, ready > 0 ? { status: 'ready', workers: ready } : { status: 'not ready', reason: 'no worker has joined' });
    });
    app[method]('/metrics', (res) => {
      const ex = new Exchange(res, head);
      d.metrics.registry.metrics().then(
        (text) => ex.send(200, { 'content-type': d.metrics.registry.contentType }, text),
        (e: unknown) => ex.error(e, d.log),
      );
    });
  }
}

export interface ControlPlane {
  url: string;
  port: number;
  credentials: Credentials;
  credentialsPath: string;
  stop(): Promise<void>;
}

export const BATON_VERSION = '0.1.0';

function positive(name: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt;
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name} must be a positive number, got ${String(v)}`);
  return n;
}

/** Start the control plane: SQLite store, data plane, worker gateway, HTTP API, control loops. */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const log = o.logger.child({ component: 'controlplane' });
  const clock = o.clock ?? systemClock;
  const host = o.host ?? '127.0.0.1';
  const heartbeatMs = positive('heartbeatMs', o.heartbeatMs, 1000);
  const heartbeatTimeoutMs = positive('heartbeatTimeoutMs', o.heartbeatTimeoutMs, 15_000);
  if (heartbeatTimeoutMs <= heartbeatMs) throw new RangeError(`heartbeatTimeoutMs (${heartbeatTimeoutMs}) must exceed heartbeatMs (${heartbeatMs})`);
  const maxInvokeBodyBytes = positive('maxInvokeBodyBytes', o.maxInvokeBodyBytes, 6 * 1024 * 1024);
  const maxBundleBytes = positive('maxBundleBytes', o.maxBundleBytes, 50 * 1024 * 1024);
  const maxResponseBytes = positive('maxResponseBytes', o.maxResponseBytes, 16 * 1024 * 1024);
  if (maxResponseBytes > MAX_FRAME_BYTES - 1024 * 1024) throw new RangeError(`maxResponseBytes must stay below the worker frame limit of ${MAX_FRAME_BYTES} bytes (less 1 MiB of headroom), got ${maxResponseBytes}`);
  const workerGraceMs = o.workerGraceMs ?? 5_000;
  const classes = new PriceClassSet(o.priceClasses ?? DEFAULT_PRICE_CLASSES);
  const priceClasses = classes.names();
  const startedAt = clock.now();

  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const store = new SqliteStore(join(o.dataDir, 'baton.db'));
  const auth = new Authenticator(store);
  store.ensureNamespace('default', clock.wallNow());

  // Credentials: explicit options win, then the credentials file, then new secrets.
  const previous = readCredentials(o.dataDir);
  let apiKey = o.apiKey ?? previous?.apiKey;
  if (apiKey === undefined) {
    if (store.hasAdminKey()) {
      log.warn('credentials.json is missing and no admin key was given: the stored admin key cannot be shown; a new admin key is issued');
    }
    apiKey = auth.issue(null, 'admin', clock.wallNow());
  } else {
    auth.issue(null, 'admin', clock.wallNow(), apiKey);
  }
  const joinToken = o.joinToken ?? previous?.joinToken ?? `bj_${randomSecret(24)}`;
  let joinTokenHash = sha256Hex(joinToken);
  store.putSetting('joinTokenHash', joinTokenHash);

  const dispatcher: Dispatcher = new Dispatcher({
    clock,
    classes,
    log: o.logger.child({ component: 'dataplane' }),
    maxQueuePerFunction: positive('maxQueuePerFunction', o.maxQueuePerFunction, 10_000),
    maxWaitMs: positive('maxWaitMs', o.maxWaitMs, 30_000),
    hooks: {
      place: (fn, rank): NodeState | 'busy' | undefined => placement.place(fn, rank),
      awaitingWorkers: () => clock.now() - startedAt < workerGraceMs,
      onSandboxCreated: () => metrics.creations.inc(),
      onSandboxReady: () => metrics.ready.inc(),
      // the worker keeps the log lines of a sandbox that went for a while: ask it for them meanwhile
      onSandboxGone: (sb) => logs.sandboxGone(sb.node, sb.fn.key),
      onCallDone: (call, r) => {
        metrics.observe(call, r);
        const u = r.usage;
        const cost = u === undefined ? 0 : ledger.record(call.fn.namespace, call.fn.name, call.req.priceClass, u.cpuMs, u.mbMs);
        r.cost = cost;
        // async attempts are recorded (and persisted) by the async invoker
        if (call.req.async !== true) {
          const worker = r.nodeId === undefined ? null : (nodes.get(r.nodeId)?.name ?? r.nodeId);
          const rec = recordOf({ id: call.id, namespace: call.fn.namespace, function: call.fn.name, priceClass: call.req.priceClass, parentId: call.req.parentId }, r, clock.wallNow(), cost, worker);
          activations.addSync(rec);
          metrics.activations.bind(rec.status).inc();
        }
      },
    },
  });
  const activationStore = new ActivationStore(store.database);
  const usageStore = new UsageStore(store.database);
  const ledger = new UsageLedger(usageStore, classes, o.memoryPrice ?? 0.25, clock, o.logger.child({ component: 'billing' }));
  const budgets = new BudgetGate(usageStore, ledger, classes, clock, (ns, cls) => metrics.throttled.bind(ns, cls).inc());
  const asyncInvoker = new AsyncInvoker(
    activationStore,
    dispatcher,
    classes,
    clock,
    o.logger.child({ component: 'async' }),
    {
      cost: (_ns, _fn, _cls, r) => r.cost ?? 0,
      worker: (nodeId) => (nodeId === undefined ? null : (nodes.get(nodeId)?.name ?? nodeId)),
      onEnd: (rec) => metrics.activations.bind(rec.status).inc(),
    },
    {
      ...(o.maxPendingAsync === undefined ? {} : { maxPending: o.maxPendingAsync }),
      ...(o.activationRetentionMs === undefined ? {} : { retentionMs: o.activationRetentionMs }),
    },
  );
  const activations = new ActivationLog(activationStore, o.syncActivations ?? 10_000, (ns, id) => asyncInvoker.live(ns, id));
  const nodes: NodeRegistry = new NodeRegistry({
    clock,
    log: o.logger.child({ component: 'nodes' }),
    dispatcher,
    heartbeatTimeoutMs,
    onMemoryReport: (n) => placement.memoryReport(n),
    onUnready: (n) => placement.forget(n),
  });
  const placement: Placement = new Placement(nodes, createRng(o.seed ?? Date.now()));
  const metrics = new ControlPlaneMetrics(dispatcher, nodes, () => asyncInvoker.backlog, () => priceClasses);
  const functions = new FunctionService(store, dispatcher, clock, priceClasses, maxBundleBytes);
  const loaded = functions.loadAll();

  const app = uws.App();
  const chains = new ChainCalls({ dispatcher, classes, budgets, log: o.logger.child({ component: 'chains' }), maxInvokeBodyBytes, maxDepth: o.maxCallDepth ?? DEFAULT_MAX_CALL_DEPTH });
  const logs = new LogCollector({ nodes, dispatcher, clock });
  const gateway = new WorkerGateway({
    log: o.logger.child({ component: 'gateway' }),
    store,
    nodes,
    dispatcher,
    chains,
    metrics,
    joinTokenHash: () => joinTokenHash,
    heartbeatMs,
    maxResponseBytes,
    maxCallBodyBytes: Math.max(1, Math.floor(maxInvokeBodyBytes)),
    classes: priceClasses,
    logs,
  });
  gateway.mount(app);
  const routes = new RouteTable(app, auth, log);
  mountManagementApi({
    routes,
    store,
    auth,
    functions,
    dispatcher,
    nodes,
    clock,
    maxManagementBodyBytes: Math.ceil((maxBundleBytes * 4) / 3) + 1024 * 1024,
    version: BATON_VERSION,
    startedAt,
  });
  mountInvokeApi(app, { auth, dispatcher, log, priceClasses, maxInvokeBodyBytes, budgets, async: asyncInvoker });
  const fetchLogs = mountLogsApi({ routes, functions, logs });
  mountActivationsApi({ routes, store, activations, async: asyncInvoker, ledger, budgets, clock, fetchLogs });
  mountProbes(app, { nodes, metrics, log });
  app.any('/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    new Exchange(res, method === 'HEAD').error(new BatonError('not_found', `no such endpoint: ${method} ${req.getUrl()}`));
  });

  const listenSocket = await listenExclusive(app, host, o.port ?? 8080, o.listenTimeoutMs ?? 90_000, log);
  const port = uws.us_socket_local_port(listenSocket);
  const url = `http://${host}:${port}`;
  const credentials: Credentials = { gateway: url, apiKey, joinToken };
  const credentialsPath = writeCredentials(o.dataDir, credentials);

  nodes.start((node) => gateway.closeNode(node, 'declared dead: missed heartbeats'));
  const autoscaler = new AutoscalerLoop(dispatcher, clock, positive('autoscalerTickMs', o.autoscalerTickMs, 1000));
  autoscaler.start();
  ledger.start();
  const resumed = asyncInvoker.start();
  const purge = setInterval(() => {
    try {
      activationStore.purge(clock.wallNow());
    } catch (e) {
      log.warn({ err: e }, 'could not purge expired activation records');
    }
  }, 3600_000);
  purge.unref();
  log.info({ url, dataDir: o.dataDir, functions: loaded, asyncResumed: resumed, heartbeatTimeoutMs }, 'control plane listening');

  let stopped = false;
  return {
    url,
    port,
    credentials,
    credentialsPath,
    async stop() {
      if (stopped) return;
      stopped = true;
      autoscaler.stop();
      nodes.stop();
      asyncInvoker.stop();
      clearInterval(purge);
      logs.stop();
      gateway.closeAll();
      uws.us_listen_socket_close(listenSocket);
      await functions.close();
      ledger.stop();
      store.close();
      joinTokenHash = '';
      await new Promise((r) => setImmediate(r));
      log.info('control plane stopped');
    },
  };
}
