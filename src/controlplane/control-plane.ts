import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Counter } from 'prom-client';
import uws from 'uWebSockets.js';
import { systemClock, type Clock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import { randomSecret, sha256Hex } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import { processFaults } from '../common/process-guard.js';
import { DEFAULT_PRICE_CLASSES, PriceClassSet, type PriceClassDef } from '../policies/price-classes.js';
import { MAX_FRAME_BYTES } from '../protocol/codec.js';
import { replyError, requestOf, wireOf } from '../scheduler/core-calls.js';
import type { CoreMetricsSnapshot, CoreToMain, FunctionStatus, SandboxRow } from '../scheduler/core-messages.js';
import { SharedCorePool } from '../scheduler/shared-core-pool.js';
import { SharedNodes } from '../scheduler/shared-nodes.js';
import { ActivationStore } from '../storage/activation-store.js';
import { SqliteStore } from '../storage/sqlite-store.js';
import type { ActivationRecord } from '../storage/activation-store.js';
import type { UsageRow } from '../storage/usage-store.js';
import { UsageStore } from '../storage/usage-store.js';
import { mountActivationsApi } from './activations-api.js';
import { ActivationLog } from './activations.js';
import { AsyncInvoker } from './async-invocations.js';
import { Authenticator } from './auth.js';
import { BudgetGate } from './budget-gate.js';
import { DEFAULT_MAX_CALL_DEPTH } from './chain-calls.js';
import { CoreHost } from './core-host.js';
import { readCredentials, writeCredentials, type Credentials } from './credentials.js';
import { FunctionService } from './function-service.js';
import { closeApp, Exchange } from './http-kit.js';
import { listenExclusive } from './listen.js';
import { LogCollector } from './log-collector.js';
import { mountLogsApi } from './logs-api.js';
import { mountManagementApi, type ClusterView } from './management-api.js';
import { ControlPlaneMetrics } from './metrics.js';
import { NodeRegistry } from './node-registry.js';
import { RouteTable } from './routes.js';
import { UsageLedger } from './usage-ledger.js';
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
  /** Scheduler cores: worker threads that each own a shard of the functions and do their own I/O (default: cores − 1, at least 1). */
  schedulerThreads?: number;
  /** Workers this control plane tracks at once (slots in the shared capacity; default 4096). */
  maxWorkers?: number;
  /** Cores per worker placed on (a worker offering more still uses them all on its machine; default 64). */
  maxCoresPerWorker?: number;
  logLevel?: string;
  /** How long to keep retrying when the port is blocked but nothing listens there (TIME_WAIT after a crash). */
  listenTimeoutMs?: number;
  clock?: Clock;
}

/** `/metrics` (every core's series merged in) and the process-fault counter, on the main thread's app. */
function mountMetrics(app: uws.TemplatedApp, d: { metrics: ControlPlaneMetrics; cores: () => Promise<CoreMetricsSnapshot[]>; log: Logger }): void {
  let coreFaults = { uncaughtExceptions: 0, unhandledRejections: 0 };
  new Counter({
    name: 'baton_process_faults_total',
    help: 'Uncaught exceptions and unhandled rejections the process guard logged and survived, on the main thread and every scheduler core (each one is a bug)',
    labelNames: ['kind'],
    registers: [d.metrics.registry],
    collect() {
      const f = processFaults();
      this.reset();
      this.inc({ kind: 'uncaught_exception' }, f.uncaughtExceptions + coreFaults.uncaughtExceptions);
      this.inc({ kind: 'unhandled_rejection' }, f.unhandledRejections + coreFaults.unhandledRejections);
    },
  });
  for (const method of ['get', 'head'] as const) {
    const head = method === 'head';
    app[method]('/metrics', (res) => {
      const ex = new Exchange(res, head);
      d.cores()
        .then((snaps) => {
          d.metrics.refresh(snaps);
          coreFaults = { uncaughtExceptions: 0, unhandledRejections: 0 };
          for (const c of snaps) {
            coreFaults.uncaughtExceptions += c.faults.uncaughtExceptions;
            coreFaults.unhandledRejections += c.faults.unhandledRejections;
          }
          return d.metrics.registry.metrics();
        })
        .then(
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
  /** Scheduler cores running the data plane. */
  schedulerThreads: number;
  stop(): Promise<void>;
}

export const BATON_VERSION = '0.1.0';

function positive(name: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt;
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name} must be a positive number, got ${String(v)}`);
  return n;
}

/** The default number of scheduler cores: one per CPU core but one (the main thread's), at least one. */
export function defaultSchedulerThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Start the control plane. The main thread keeps SQLite, the management API
 * (on a loopback port the cores forward to), the workers' control links, the
 * async store, billing and budgets; the data plane runs on
 * `schedulerThreads` scheduler cores (worker threads, CoreHost), which listen
 * on the public port together. See docs/architecture.md.
 */
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
  const threads = o.schedulerThreads ?? defaultSchedulerThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new RangeError(`schedulerThreads must be an integer from 1 to 256, got ${String(o.schedulerThreads)}`);
  const maxWorkers = positive('maxWorkers', o.maxWorkers, 4096);
  const coresPerWorker = positive('maxCoresPerWorker', o.maxCoresPerWorker, 64);
  const workerGraceMs = o.workerGraceMs ?? 5_000;
  const classes = new PriceClassSet(o.priceClasses ?? DEFAULT_PRICE_CLASSES);
  const priceClasses = classes.names();
  const startedAt = clock.now();
  const maxManagementBodyBytes = Math.ceil((maxBundleBytes * 4) / 3) + 1024 * 1024;

  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const dbPath = join(o.dataDir, 'baton.db');
  const store = new SqliteStore(dbPath);
  // the scheduler cores, once started (the parts built before them reach them through this)
  const running: { cores?: CoreHost } = {};
  const broadcast: CoreHost['broadcast'] = (m) => running.cores?.broadcast(m);
  const auth = new Authenticator(store, () => broadcast({ t: 'authReset' }));
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
  const joinTokenHash = sha256Hex(joinToken);
  store.putSetting('joinTokenHash', joinTokenHash);

  // the capacity every scheduler core shares: workers' slots, and their idle cores in one list per core
  const shared = SharedNodes.create(maxWorkers, classes.size);
  const pool = SharedCorePool.createEmpty(threads, maxWorkers, coresPerWorker);
  const activationStore = new ActivationStore(store.database);
  const usageStore = new UsageStore(store.database);
  const ledger = new UsageLedger(usageStore, classes, o.memoryPrice ?? 0.25, clock, o.logger.child({ component: 'billing' }));
  let lastThrottle = '{}';
  const pushThrottle = (): void => {
    const table = budgets.throttleTable();
    const text = JSON.stringify(table);
    if (text === lastThrottle) return;
    lastThrottle = text;
    broadcast({ t: 'throttle', table });
  };
  const budgets: BudgetGate = new BudgetGate(usageStore, ledger, classes, clock, undefined, () => pushThrottle());
  const nodes = new NodeRegistry({ clock, log: o.logger.child({ component: 'nodes' }), shared, pool, cores: threads, broadcast, heartbeatTimeoutMs });
  const metrics = new ControlPlaneMetrics(nodes, () => asyncInvoker.backlog, () => priceClasses);
  const functions = new FunctionService(
    store,
    {
      upsert: (records) => broadcast({ t: 'functions', records }),
      remove: (key) => broadcast({ t: 'functionRemoved', key }),
      // a round trip to every core: each handles its messages in order, so it has the changes sent before
      settled: async () => void (running.cores === undefined ? undefined : await running.cores.queryAll({ q: 'ping' })),
    },
    clock,
    priceClasses,
    maxBundleBytes,
  );
  const host_ = (): CoreHost => {
    if (running.cores === undefined) throw new BatonError('overloaded', 'the control plane is starting', { retryAfter: 1 });
    return running.cores;
  };
  const asyncInvoker: AsyncInvoker = new AsyncInvoker(
    activationStore,
    {
      record: (key) => functions.find(key),
      invoke: (key, id, req, reply) => host_().invoke(key, id, wireOf(req, clock.now()), reply),
    },
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
  const activations = new ActivationLog(
    activationStore,
    {
      get: async (ns, id) => (await host_().queryAll<ActivationRecord | undefined>({ q: 'activation', namespace: ns, id })).find((r) => r !== undefined),
      list: async (ns, opts) => (await host_().queryAll<ActivationRecord[]>({ q: 'activations', namespace: ns, function: opts.function, since: opts.since, limit: opts.limit })).flat(),
    },
    (ns, id) => asyncInvoker.live(ns, id),
  );
  const logs = new LogCollector({ nodes, running: (key) => host_().query<[string, string][]>(host_().ownerOf(key), { q: 'holders', key }), clock });
  const gateway = new WorkerGateway({
    log: o.logger.child({ component: 'gateway' }),
    store,
    nodes,
    write: (core, conn, data) => host_().send(core, { t: 'wSend', conn, data }),
    end: (core, conn, code, reason) => host_().send(core, { t: 'wEnd', conn, code, reason }),
    linkPorts: () => host_().linkPorts,
    onBadFrame: () => metrics.badFrames.inc(),
    heartbeatMs,
    maxResponseBytes,
    maxCallBodyBytes: Math.max(1, Math.floor(maxInvokeBodyBytes)),
    classes: priceClasses,
    logs,
  });
  const collectUsage = async (): Promise<void> => {
    for (const rows of await host_().queryAll<UsageRow[]>({ q: 'usage' })) ledger.absorb(rows);
    pushThrottle();
  };
  const cluster: ClusterView = {
    functionStatus: async (keys) => {
      const byOwner = new Map<number, string[]>();
      for (const k of keys) {
        const owner = host_().ownerOf(k);
        byOwner.set(owner, [...(byOwner.get(owner) ?? []), k]);
      }
      const parts = await Promise.all([...byOwner].map(([core, ks]) => host_().query<Record<string, FunctionStatus>>(core, { q: 'functionStatus', keys: ks })));
      return Object.assign({}, ...parts) as Record<string, FunctionStatus>;
    },
    sandboxes: async (namespace) => (await host_().queryAll<SandboxRow[]>({ q: 'sandboxes', namespace })).flat(),
    nodeStats: async () => {
      const out = new Map<string, [number, number]>();
      for (const part of await host_().queryAll<Record<string, [number, number]>>({ q: 'nodeStats' })) {
        for (const [id, [sb, inflight]] of Object.entries(part)) {
          const t = out.get(id) ?? [0, 0];
          out.set(id, [t[0] + sb, t[1] + inflight]);
        }
      }
      return out;
    },
    status: async (namespace) => {
      const sum = { sandboxes: 0, inflight: 0, queued: 0 };
      for (const p of await host_().queryAll<{ sandboxes: number; inflight: number; queued: number }>({ q: 'status', namespace })) {
        sum.sandboxes += p.sandboxes;
        sum.inflight += p.inflight;
        sum.queued += p.queued;
      }
      return sum;
    },
    busyCores: (n) => (n.slot >= 0 ? shared.busy(n.slot) : 0),
  };

  // The main thread's own app, on loopback: every request but invocations reaches it, forwarded by the cores.
  const app = uws.App();
  const routes = new RouteTable(app, auth, log);
  mountManagementApi({ routes, store, auth, functions, cluster, nodes, clock, maxManagementBodyBytes, version: BATON_VERSION, startedAt, schedulerThreads: threads });
  const fetchLogs = mountLogsApi({ routes, functions, logs });
  mountActivationsApi({ routes, store, activations, async: asyncInvoker, ledger, budgets, clock, fetchLogs, collectUsage });
  mountMetrics(app, { metrics, cores: () => host_().queryAll<CoreMetricsSnapshot>({ q: 'metrics' }), log });
  app.any('/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    new Exchange(res, method === 'HEAD').error(new BatonError('not_found', `no such endpoint: ${method} ${req.getUrl()}`));
  });
  const internal = await new Promise<uws.us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s === false ? reject(new BatonError('conflict', 'cannot listen on a loopback port for the management API')) : resolve(s))));
  const internalPort = uws.us_socket_local_port(internal);

  const onMessage = (core: number, m: CoreToMain): void => {
    switch (m.t) {
      case 'wOpen':
        gateway.opened(core, m.conn, m.remote);
        return;
      case 'wMsg':
        gateway.message(m.conn, m.data, m.binary);
        return;
      case 'wClosed':
        gateway.closed(m.conn, m.code, m.reason);
        return;
      case 'linkUp': {
        const n = nodes.linkUp(m.slot, m.gen, m.adopted, m.dropped);
        if (n !== undefined) gateway.joined(n);
        return;
      }
      case 'linkDown': {
        const n = nodes.ofSlot(m.slot, m.gen);
        if (n !== undefined) gateway.linkLost(n, m.reason);
        return;
      }
      case 'nodeLostAck':
        nodes.lostAck(m.slot);
        return;
      case 'usage':
        ledger.absorb(m.rows);
        pushThrottle();
        return;
      case 'gone':
        for (const [nodeId, name, key] of m.items) logs.sandboxGone(nodeId, name, key);
        return;
      case 'asyncAccept': {
        const rec = functions.find(m.key);
        const answer = (p: Promise<ActivationRecord>): void =>
          void p.then(
            (r) => host_().send(core, { t: 'reply', rid: m.rid, value: { id: r.id, status: r.status } }),
            (e: unknown) => host_().send(core, { t: 'reply', rid: m.rid, error: replyError(e) }),
          );
        if (rec === undefined) {
          const [ns, name] = m.key.split('/');
          answer(Promise.reject(new BatonError('not_found', `function "${name ?? m.key}" not found in namespace "${ns ?? ''}"`)));
          return;
        }
        const priceClass = m.priceClass ?? rec.spec.priceClass;
        try {
          // an async call is admitted once, when it is accepted: its attempts are not refused for the budget
          budgets.admit(rec.namespace, priceClass);
        } catch (e) {
          answer(Promise.reject(e instanceof Error ? e : new Error(String(e))));
          return;
        }
        const req = requestOf(m.req);
        // its attempts measure their own queueing
        delete req.arrivedAt;
        answer(asyncInvoker.accept(rec, { ...req, priceClass }, m.callbackUrl));
        return;
      }
      default:
        return;
    }
  };
  let fatal = false;
  const listening = listenExclusive({
    host,
    port: o.port ?? 8080,
    timeoutMs: o.listenTimeoutMs ?? 90_000,
    log,
    start: (port) =>
      CoreHost.start({
        count: threads,
        log: o.logger.child({ component: 'cores' }),
        init: {
          host,
          port,
          internalPort,
          dbPath,
          joinTokenHash,
          nodesBuffer: shared.buffer,
          poolBuffer: pool.buffer,
          classes: classes.byRank.map((c) => ({ name: c.name, price: c.price })),
          memoryPrice: o.memoryPrice ?? 0.25,
          maxQueuePerFunction: positive('maxQueuePerFunction', o.maxQueuePerFunction, 10_000),
          maxWaitMs: positive('maxWaitMs', o.maxWaitMs, 30_000),
          maxInvokeBodyBytes,
          maxResponseBytes,
          maxManagementBodyBytes,
          maxCallDepth: o.maxCallDepth ?? DEFAULT_MAX_CALL_DEPTH,
          autoscalerTickMs: positive('autoscalerTickMs', o.autoscalerTickMs, 1000),
          awaitWorkersUntil: performance.timeOrigin + clock.now() + workerGraceMs,
          syncActivations: Math.max(1, Math.ceil((o.syncActivations ?? 10_000) / threads)),
          seed: o.seed ?? Date.now(),
          logLevel: o.logLevel ?? o.logger.level,
        },
        onMessage,
        onFatal: (core, reason) => {
          if (fatal) return;
          fatal = true;
          log.fatal({ core, reason }, 'a scheduler core died: the control plane stops (its calls cannot be answered any more); restart it, the workers rejoin');
          process.exitCode = 70;
          process.kill(process.pid, 'SIGTERM');
        },
      }),
    stop: (h) => h.stop(),
  });
  const { port, started } = await listening.catch(async (e: unknown) => {
    // nothing may stay open, or the process would not exit to report the failure
    uws.us_listen_socket_close(internal);
    closeApp(app);
    await functions.close();
    store.close();
    throw e;
  });
  const cores = started;
  running.cores = cores;
  const url = `http://${host}:${port}`;
  const credentials: Credentials = { gateway: url, apiKey, joinToken };
  const credentialsPath = writeCredentials(o.dataDir, credentials);

  const loaded = functions.loadAll();
  pushThrottle();
  // every core has the functions before the first call is taken for them
  await cores.queryAll({ q: 'ping' });
  nodes.start((node) => gateway.closeNode(node, 'declared dead: missed heartbeats'));
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
  log.info({ url, dataDir: o.dataDir, functions: loaded, asyncResumed: resumed, heartbeatTimeoutMs, schedulerThreads: threads }, 'control plane listening');

  let stopped = false;
  return {
    url,
    port,
    credentials,
    credentialsPath,
    schedulerThreads: threads,
    async stop() {
      if (stopped) return;
      stopped = true;
      nodes.stop();
      asyncInvoker.stop();
      clearInterval(purge);
      logs.stop();
      await cores.stop();
      uws.us_listen_socket_close(internal);
      closeApp(app);
      await functions.close();
      // usage the cores sent before they stopped is in the ledger: stored now
      ledger.stop();
      store.close();
      await new Promise((r) => setImmediate(r));
      log.info('control plane stopped');
    },
  };
}
