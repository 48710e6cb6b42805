import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/common/clock.js';
import { randomSecret, sha256Hex } from '../../src/common/ids.js';
import { silentLogger } from '../../src/common/logger.js';
import { FunctionService } from '../../src/controlplane/function-service.js';
import { LogCollector } from '../../src/controlplane/log-collector.js';
import { ControlPlaneMetrics } from '../../src/controlplane/metrics.js';
import { NodeRegistry } from '../../src/controlplane/node-registry.js';
import { UsageLedger } from '../../src/controlplane/usage-ledger.js';
import { WorkerGateway } from '../../src/controlplane/worker-gateway.js';
import type { Dispatcher } from '../../src/dataplane/dispatcher.js';
import type { FunctionRuntime } from '../../src/dataplane/function-runtime.js';
import type { NodeState } from '../../src/dataplane/types.js';
import { DEFAULT_PRICE_CLASSES, PriceClassSet } from '../../src/policies/price-classes.js';
import { decodeControlFrame, encodeFrame } from '../../src/protocol/codec.js';
import { PROTOCOL_VERSION, type WelcomeFrame } from '../../src/protocol/messages.js';
import type { CoreToMain, MainToCore } from '../../src/scheduler/core-messages.js';
import { PortOutbox, receive } from '../../src/scheduler/port-outbox.js';
import { SchedulerCore } from '../../src/scheduler/scheduler-core.js';
import { SharedCorePool } from '../../src/scheduler/shared-core-pool.js';
import { SharedNodes } from '../../src/scheduler/shared-nodes.js';
import { SqliteStore } from '../../src/storage/sqlite-store.js';
import { UsageStore } from '../../src/storage/usage-store.js';
import { BundleMaker } from './bundles.js';
import { SocketlessApp, type LinkedWorker } from './socketless.js';

/** What each emulated worker offers: a large machine, so placement never runs out of room for 100+ sandboxes. */
const WORKER_CORES = 32;
const WORKER_MEMORY_MB = 256 * 1024;

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * The parts of a control plane that hold cluster state in memory, built and
 * wired as `startControlPlane` (src/controlplane/control-plane.ts) builds
 * them, with one scheduler core — the main thread's function service, node
 * registry, worker gateway, metrics and log collector, and a SchedulerCore
 * (dispatcher, placement over the shared capacity, autoscaler, data links) —
 * in one thread and without sockets: the messages between them are
 * structured-cloned as postMessage clones them between threads, so each
 * side holds its own copy of what it is sent (a function's definition lives
 * on the main thread and on its core), exactly as with threads. The core is
 * not started (it does not listen); its timers do not run (the benchmark
 * ticks the autoscaler). The store is a temporary SQLite file.
 *
 * Workers reach the real WorkerGateway (control link) and the core's
 * CoreLinks (data link, through SocketlessApp): their frames are encoded,
 * decoded and handled exactly as when they come over WebSockets.
 */
export class ClusterState {
  readonly store: SqliteStore;
  readonly functions: FunctionService;
  readonly workers: LinkedWorker[] = [];
  readonly core: SchedulerCore;
  private readonly nodes: NodeRegistry;
  private readonly gateway: WorkerGateway;
  private readonly links = new SocketlessApp();
  private readonly logs: LogCollector;
  private readonly ledger: UsageLedger;
  private readonly joinToken = `bj_${randomSecret(24)}`;
  private readonly bundles = new BundleMaker();
  private readonly dir = mkdtempSync(join(tmpdir(), 'baton-memory-'));
  /** Frames the gateway wrote to each control link, decoded. */
  private readonly welcomes = new Map<number, WelcomeFrame>();
  private nextConn = 0;
  private deployed = 0;

  constructor() {
    const clock = systemClock;
    const log = silentLogger();
    const classes = new PriceClassSet(DEFAULT_PRICE_CLASSES);
    const priceClasses = classes.names();
    const dbPath = join(this.dir, 'baton.db');
    this.store = new SqliteStore(dbPath);
    this.store.ensureNamespace('default', clock.wallNow());
    const shared = SharedNodes.create(4096, classes.size);
    const pool = SharedCorePool.createEmpty(1, 4096, 64);
    // the main thread → the core, and back: cloned like postMessage clones, one batch per turn
    const toCore = new PortOutbox<MainToCore>({ postMessage: (batch) => this.core.fromMain(structuredClone(batch)) });
    const fromCore = { postMessage: (batch: unknown): void => receive<CoreToMain>(structuredClone(batch), (m) => this.fromCore(m), (e) => { throw e; }) };
    this.nodes = new NodeRegistry({ clock, log, shared, pool, cores: 1, broadcast: (m) => toCore.send(m), heartbeatTimeoutMs: 15_000 });
    const usageStore = new UsageStore(this.store.database);
    this.ledger = new UsageLedger(usageStore, classes, 0.25, clock, log);
    new ControlPlaneMetrics(this.nodes, () => 0, () => priceClasses);
    this.functions = new FunctionService(this.store, { upsert: (records) => toCore.send({ t: 'functions', records }), remove: (key) => toCore.send({ t: 'functionRemoved', key }), settled: turn }, clock, priceClasses, 50 * 1024 * 1024);
    this.logs = new LogCollector({ nodes: this.nodes, running: () => Promise.resolve([]), clock });
    this.gateway = new WorkerGateway({
      log,
      store: this.store,
      nodes: this.nodes,
      write: (_core, conn, data) => {
        const f = decodeControlFrame(data);
        if (f.t === 'welcome') this.welcomes.set(conn, f);
      },
      end: (_core, conn, code, reason) => {
        throw new Error(`the control plane closed the control link ${conn}: ${code} ${reason}`);
      },
      linkPorts: () => [1],
      onBadFrame: () => undefined,
      heartbeatMs: 1000,
      maxResponseBytes: 16 * 1024 * 1024,
      maxCallBodyBytes: 6 * 1024 * 1024,
      classes: priceClasses,
      logs: this.logs,
    });
    this.core = new SchedulerCore(
      {
        index: 0,
        cores: 1,
        host: '127.0.0.1',
        port: 0,
        internalPort: 1,
        dbPath,
        joinTokenHash: sha256Hex(this.joinToken),
        nodesBuffer: shared.buffer,
        poolBuffer: pool.buffer,
        classes: classes.byRank.map((c) => ({ name: c.name, price: c.price })),
        memoryPrice: 0.25,
        maxQueuePerFunction: 10_000,
        maxWaitMs: 30_000,
        maxInvokeBodyBytes: 6 * 1024 * 1024,
        maxResponseBytes: 16 * 1024 * 1024,
        maxManagementBodyBytes: 80 * 1024 * 1024,
        maxCallDepth: 16,
        autoscalerTickMs: 3600_000,
        awaitWorkersUntil: 0,
        syncActivations: 10_000,
        seed: 1,
        logLevel: 'silent',
        peers: [undefined],
      },
      fromCore,
      log,
      { linksApp: this.links.asTemplatedApp() },
    );
  }

  /** The core's dispatcher: every function's runtime state and every sandbox. */
  get dispatcher(): Dispatcher {
    return this.core.dispatcher;
  }

  private fromCore(m: CoreToMain): void {
    if (m.t === 'linkUp') {
      const n = this.nodes.linkUp(m.slot, m.gen, m.adopted, m.dropped);
      if (n !== undefined) this.gateway.joined(n);
    } else if (m.t === 'usage') this.ledger.absorb(m.rows);
    else if (m.t === 'gone') for (const [id, name, key] of m.items) this.logs.sandboxGone(id, name, key);
    else if (m.t === 'nodeLostAck') this.nodes.lostAck(m.slot);
  }

  /** Workers join: each says hello on its control link, opens its data link to the core, then sends one heartbeat. */
  async connectWorkers(count: number): Promise<void> {
    const joining: { conn: number; nodeId: string }[] = [];
    for (let i = 0; i < count; i++) {
      const conn = this.nextConn++;
      const nodeId = `node-${String(this.workers.length + i).padStart(5, '0')}`;
      this.gateway.opened(0, conn, '127.0.0.1');
      this.gateway.message(conn, encodeFrame({ t: 'hello', protocol: PROTOCOL_VERSION, nodeId, name: nodeId, cores: WORKER_CORES, memoryMb: WORKER_MEMORY_MB, runtime: 'process', sandboxes: [] }), true);
      joining.push({ conn, nodeId });
    }
    // the core hears of them (nodeJoined), then their links come
    await turn();
    for (const { conn, nodeId } of joining) {
      const welcome = this.welcomes.get(conn);
      if (welcome === undefined) throw new Error(`worker ${nodeId} got no welcome`);
      this.welcomes.delete(conn);
      const w = this.links.connect(this.joinToken);
      w.deliver({ t: 'linkHello', protocol: PROTOCOL_VERSION, nodeId, session: welcome.session, core: 0, sandboxes: [] });
      this.workers.push(w);
    }
    // linkUp to the main thread, nodeReady back to the core
    await turn();
    await turn();
    for (const { conn } of joining) this.gateway.message(conn, encodeFrame({ t: 'heartbeat', freeMemoryMb: WORKER_MEMORY_MB, sandboxes: 0 }), true);
    const ready = this.core.nodes().filter((n) => n.status === 'ready').length;
    if (ready < this.workers.length) throw new Error(`${this.workers.length} workers linked, the core has ${ready} ready`);
  }

  /**
   * Deploy `count` node functions like examples/hello, each with its own
   * bundle, through FunctionService.apply: the same path as
   * `PUT /v1/namespaces/default/functions/{name}` once the body is parsed.
   * `minScale`: sandboxes each keeps warm (scale.min).
   */
  async deployFunctions(count: number, minScale = 0): Promise<void> {
    for (let i = 0; i < count; i++) {
      const n = this.deployed++;
      const name = `hello-${String(n).padStart(6, '0')}`;
      // (a fresh, flat copy: names reach apply from the HTTP layer as flat strings)
      await this.functions.apply('default', Buffer.from(name).toString('latin1'), {
        spec: { runtime: 'node', handler: './index.js', priceClass: 'standard', env: { GREETING: 'hello' }, concurrency: 4, scale: { min: minScale, max: Math.max(10, minScale), keepAlive: '60s' }, timeout: '10s' },
        bundle: await this.bundles.next(n),
      });
    }
    // the core has them
    await turn();
  }

  /**
   * `perFunction` new sandboxes for every function, asked of the dispatcher
   * as the autoscaler asks (createSandbox → placement → create frame), then
   * each worker reports its sandboxes ready, as a worker does when they are
   * up. Returns how many were created.
   */
  createSandboxes(perFunction: number): number {
    let created = 0;
    for (const fn of this.dispatcher.functions.values()) {
      for (let k = 0; k < perFunction; k++) {
        if (!this.dispatcher.createSandbox(fn)) throw new Error(`no worker took sandbox ${k + 1} of ${fn.key}`);
        created++;
      }
    }
    for (const w of this.workers) w.reportCreatedReady();
    return created;
  }

  /**
   * Autoscaler ticks, back to back: each records every active function's
   * concurrency, so after a stable window's worth of ticks (60 at the
   * default 1 s period and 60 s window) the autoscaler holds as much
   * history as it ever does. Nothing is created or deleted when every
   * function has its scale.min sandboxes.
   */
  tickAutoscaler(times: number): void {
    for (let i = 0; i < times; i++) this.core.tickAutoscaler();
  }

  /** Every function's runtime state (for checks). */
  runtimes(): FunctionRuntime[] {
    return [...this.dispatcher.functions.values()];
  }

  /** Every worker the core knows (for checks). */
  nodeStates(): NodeState[] {
    return this.core.nodes();
  }

  async close(): Promise<void> {
    this.core.stop();
    this.logs.stop();
    this.nodes.stop();
    this.ledger.stop();
    await this.functions.close();
    this.store.close();
    this.bundles.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
