import { systemClock } from '../../src/common/clock.js';
import { randomSecret, sha256Hex } from '../../src/common/ids.js';
import { silentLogger } from '../../src/common/logger.js';
import { AutoscalerLoop } from '../../src/controlplane/autoscaler-loop.js';
import { BudgetGate } from '../../src/controlplane/budget-gate.js';
import { ChainCalls, DEFAULT_MAX_CALL_DEPTH } from '../../src/controlplane/chain-calls.js';
import { FunctionService } from '../../src/controlplane/function-service.js';
import { LogCollector } from '../../src/controlplane/log-collector.js';
import { ControlPlaneMetrics } from '../../src/controlplane/metrics.js';
import { NodeRegistry } from '../../src/controlplane/node-registry.js';
import { Placement } from '../../src/controlplane/placement.js';
import { UsageLedger } from '../../src/controlplane/usage-ledger.js';
import { WorkerGateway } from '../../src/controlplane/worker-gateway.js';
import { Dispatcher } from '../../src/dataplane/dispatcher.js';
import type { FunctionRuntime } from '../../src/dataplane/function-runtime.js';
import type { NodeState } from '../../src/dataplane/types.js';
import { DEFAULT_PRICE_CLASSES, PriceClassSet } from '../../src/policies/price-classes.js';
import { createRng } from '../../src/policies/rng.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { SqliteStore } from '../../src/storage/sqlite-store.js';
import { UsageStore } from '../../src/storage/usage-store.js';
import { BundleMaker } from './bundles.js';
import { SocketlessApp, type LinkedWorker } from './socketless.js';

/** What each emulated worker offers: a large machine, so placement never runs out of room for 100+ sandboxes. */
const WORKER_CORES = 32;
const WORKER_MEMORY_MB = 256 * 1024;

/**
 * The parts of a control plane that hold cluster state in memory, built and
 * wired as `startControlPlane` (src/controlplane/control-plane.ts) builds
 * them — dispatcher, node registry, placement, metrics, function service,
 * log collector, autoscaler loop, worker gateway — without the HTTP listener
 * and the parts that hold state per call only (activation log, async
 * invoker). The store is SQLite in memory (outside the V8 heap, like the
 * file-backed store's page cache), so deploying thousands of functions does
 * not wait for fsync.
 *
 * Workers reach the real WorkerGateway through SocketlessApp: their frames
 * are encoded, decoded and handled exactly as when they come over a
 * WebSocket; only the socket is missing.
 */
export class ClusterState {
  readonly store: SqliteStore;
  readonly dispatcher: Dispatcher;
  readonly nodes: NodeRegistry;
  readonly functions: FunctionService;
  readonly workers: LinkedWorker[] = [];
  /** Not started: the benchmark runs its ticks. */
  readonly autoscaler: AutoscalerLoop;
  private readonly gateway: WorkerGateway;
  private readonly app = new SocketlessApp();
  private readonly logs: LogCollector;
  private readonly ledger: UsageLedger;
  private readonly joinToken = `bj_${randomSecret(24)}`;
  private readonly bundles = new BundleMaker();
  private deployed = 0;

  constructor() {
    const clock = systemClock;
    const log = silentLogger();
    const classes = new PriceClassSet(DEFAULT_PRICE_CLASSES);
    const priceClasses = classes.names();
    this.store = new SqliteStore(':memory:');
    this.store.ensureNamespace('default', clock.wallNow());
    const joinTokenHash = sha256Hex(this.joinToken);
    // forward references, as in startControlPlane: the hooks run only once every part exists
    const dispatcher: Dispatcher = new Dispatcher({
      clock,
      classes,
      log,
      maxQueuePerFunction: 10_000,
      maxWaitMs: 30_000,
      hooks: {
        place: (fn, rank): NodeState | 'busy' | undefined => placement.place(fn, rank),
        awaitingWorkers: () => false,
        onSandboxCreated: () => metrics.creations.inc(),
        onSandboxReady: () => metrics.ready.inc(),
        onSandboxGone: (sb) => logs.sandboxGone(sb.node, sb.fn.key),
      },
    });
    this.dispatcher = dispatcher;
    const usageStore = new UsageStore(this.store.database);
    this.ledger = new UsageLedger(usageStore, classes, 0.25, clock, log);
    const budgets = new BudgetGate(usageStore, this.ledger, classes, clock);
    this.nodes = new NodeRegistry({
      clock,
      log,
      dispatcher,
      heartbeatTimeoutMs: 15_000,
      onMemoryReport: (n) => placement.memoryReport(n),
      onUnready: (n) => placement.forget(n),
    });
    const placement: Placement = new Placement(this.nodes, createRng(1));
    const metrics = new ControlPlaneMetrics(dispatcher, this.nodes, () => 0, () => priceClasses);
    this.functions = new FunctionService(this.store, dispatcher, clock, priceClasses, 50 * 1024 * 1024);
    const chains = new ChainCalls({ dispatcher, classes, budgets, log, maxInvokeBodyBytes: 6 * 1024 * 1024, maxDepth: DEFAULT_MAX_CALL_DEPTH });
    const logs = new LogCollector({ nodes: this.nodes, dispatcher, clock });
    this.logs = logs;
    this.gateway = new WorkerGateway({
      log,
      store: this.store,
      nodes: this.nodes,
      dispatcher,
      chains,
      metrics,
      joinTokenHash: () => joinTokenHash,
      heartbeatMs: 1000,
      maxResponseBytes: 16 * 1024 * 1024,
      maxCallBodyBytes: 6 * 1024 * 1024,
      classes: priceClasses,
      logs: this.logs,
    });
    this.gateway.mount(this.app.asTemplatedApp());
    this.autoscaler = new AutoscalerLoop(dispatcher, clock, 1000);
  }

  /** Workers join: each says hello over its own link, then sends one heartbeat (which lists it for placement). */
  connectWorkers(count: number): void {
    for (let i = 0; i < count; i++) {
      const w = this.app.connect(this.joinToken);
      const nodeId = `node-${String(this.workers.length).padStart(5, '0')}`;
      w.deliver({ t: 'hello', protocol: PROTOCOL_VERSION, nodeId, name: nodeId, cores: WORKER_CORES, memoryMb: WORKER_MEMORY_MB, runtime: 'process', sandboxes: [] });
      if (w.closedWith !== undefined) throw new Error(`worker ${nodeId} was refused: ${w.closedWith}`);
      w.deliver({ t: 'heartbeat', freeMemoryMb: WORKER_MEMORY_MB, sandboxes: 0 });
      this.workers.push(w);
    }
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
    for (let i = 0; i < times; i++) this.autoscaler.tick();
  }

  /** Every function's runtime state (for checks). */
  runtimes(): FunctionRuntime[] {
    return [...this.dispatcher.functions.values()];
  }

  /** Every node known to the registry (for checks). */
  nodeStates(): NodeState[] {
    return [...this.nodes.all()];
  }

  async close(): Promise<void> {
    this.gateway.closeAll();
    this.logs.stop();
    this.nodes.stop();
    this.ledger.stop();
    await this.functions.close();
    this.store.close();
    this.bundles.close();
  }
}
