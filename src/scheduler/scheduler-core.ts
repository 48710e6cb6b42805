import uws, { type TemplatedApp, type WebSocket } from 'uWebSockets.js';
import { systemClock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { Dispatcher } from '../dataplane/dispatcher.js';
import type { InvocationResult, RoutedRequest } from '../dataplane/types.js';
import { PriceClassSet } from '../policies/price-classes.js';
import { createRng } from '../policies/rng.js';
import { MAX_FRAME_BYTES } from '../protocol/codec.js';
import { CloseCode, WORKER_PATH } from '../protocol/messages.js';
import { SqliteKeyReader } from '../storage/sqlite-key-reader.js';
import { recordOf, ActivationRing } from '../controlplane/activations.js';
import { Authenticator } from '../controlplane/auth.js';
import { AutoscalerLoop } from '../controlplane/autoscaler-loop.js';
import { ThrottleTable } from '../controlplane/budget-gate.js';
import { ChainCalls } from '../controlplane/chain-calls.js';
import { internRecord } from '../storage/intern-record.js';
import { Interner } from '../common/interner.js';
import { threadCpuSeconds } from '../common/thread-cpu.js';
import { processFaults } from '../common/process-guard.js';
import { closeApp, Exchange } from '../controlplane/http-kit.js';
import { mountInvokeApi, type InvokeRouter } from '../controlplane/invoke-api.js';
import { CallMetrics } from '../controlplane/metrics.js';
import { UsageDeltas } from '../controlplane/usage-ledger.js';
import { CoreCalls, errorOfReply, replyError, wireOf } from './core-calls.js';
import { CoreLinks } from './core-links.js';
import type { CoreInit, CoreQuery, CoreToCore, CoreToMain, MainToCore } from './core-messages.js';
import { CorePlacement } from './core-placement.js';
import { HttpForwarder } from './http-forward.js';
import { NodeMirror } from './node-mirror.js';
import { PendingReplies, PortOutbox, receive, type PostTarget } from './port-outbox.js';
import { SharedCorePool } from './shared-core-pool.js';
import { SharedNodes } from './shared-nodes.js';
import { upgradeWorker } from './worker-upgrade.js';

interface ControlConn {
  conn: number;
  closed: boolean;
}

/** How often the usage this core measured goes to the main thread's ledger. */
const USAGE_FLUSH_MS = 100;

/**
 * One scheduler core (a worker thread): it owns a shard of the functions —
 * their class queues, sandboxes, free slots and autoscaler state (Dispatcher,
 * AutoscalerLoop) — and does its own I/O: an HTTP app on the public port
 * (every core listens there with SO_REUSEPORT; the kernel spreads the
 * connections), and a data link from every worker (CoreLinks), so a call is
 * taken, placed, dispatched and answered on this thread. Capacity is shared
 * with the other cores through SharedArrayBuffers (SharedNodes,
 * SharedCorePool). What is not per call stays on the main thread: requests
 * other than invocations are forwarded to it over loopback, a worker's
 * control link is relayed to it, async calls are stored there, usage and
 * metrics are sent there in batches.
 */
export class SchedulerCore implements InvokeRouter {
  private readonly log: Logger;
  private readonly classes: PriceClassSet;
  private readonly shared: SharedNodes;
  private readonly pool: SharedCorePool;
  readonly dispatcher: Dispatcher;
  private readonly placement: CorePlacement;
  private readonly autoscaler: AutoscalerLoop;
  private readonly chains: ChainCalls;
  private readonly links: CoreLinks;
  private readonly calls: CoreCalls;
  private readonly app: TemplatedApp;
  private listenSocket: uws.us_listen_socket | undefined;
  private readonly forwarder: HttpForwarder;
  private readonly keys: SqliteKeyReader;
  private readonly auth: Authenticator;
  private readonly throttle: ThrottleTable;
  private readonly usage: UsageDeltas;
  private readonly ring: ActivationRing;
  private readonly metrics = new CallMetrics();
  private readonly strings = new Interner();
  private readonly mirrors = new Map<number, NodeMirror>();
  private readonly bySession = new Map<string, NodeMirror>();
  private readonly ready: NodeMirror[] = [];
  private readonly toMain: PortOutbox<CoreToMain>;
  private readonly peers: (PortOutbox<CoreToCore> | undefined)[];
  private readonly mainReplies = new PendingReplies();
  private readonly controlConns = new Map<number, WebSocket<ControlConn>>();
  private nextConn: number;
  private readonly usageTimer: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly init: CoreInit,
    main: PostTarget,
    log: Logger,
    /** For the memory benchmark: serve data links on this app (no sockets) instead of a listening one. */
    o: { linksApp?: TemplatedApp } = {},
  ) {
    this.log = log;
    this.classes = new PriceClassSet(init.classes);
    this.shared = SharedNodes.attach(init.nodesBuffer);
    this.pool = SharedCorePool.attach(init.poolBuffer);
    this.toMain = new PortOutbox<CoreToMain>(main);
    this.peers = init.peers.map((p) => (p === undefined ? undefined : new PortOutbox<CoreToCore>(p)));
    // connection ids are unique across cores: core i numbers i, i + n, i + 2n, …
    this.nextConn = init.index;
    this.keys = new SqliteKeyReader(init.dbPath);
    this.auth = new Authenticator(this.keys);
    this.throttle = new ThrottleTable(this.classes, (ns, cls) => {
      this.metrics.throttled.bind(ns, cls).inc();
    });
    this.usage = new UsageDeltas(this.classes, init.memoryPrice);
    this.ring = new ActivationRing(init.syncActivations);
    const clock = systemClock;
    this.placement = new CorePlacement(this.shared, this.pool, init.index % this.pool.shards, (slot) => this.mirrors.get(slot), () => this.ready, createRng(init.seed + init.index));
    this.dispatcher = new Dispatcher({
      clock,
      classes: this.classes,
      log: log.child({ component: 'dataplane' }),
      maxQueuePerFunction: init.maxQueuePerFunction,
      maxWaitMs: init.maxWaitMs,
      claims: this.placement,
      hooks: {
        place: (fn, rank, forCall) => this.placement.place(fn, rank, forCall),
        awaitingWorkers: () => performance.timeOrigin + performance.now() < init.awaitWorkersUntil,
        onSandboxCreated: () => this.metrics.creations.inc(),
        onSandboxReady: () => this.metrics.ready.inc(),
        // the worker keeps the log lines of a sandbox that went for a while: the main thread asks it for them meanwhile
        onSandboxGone: (sb) => this.toMain.send({ t: 'gone', items: [[sb.node.id, sb.node.name, sb.fn.key]] }),
        onCallDone: (call, r) => {
          this.metrics.observe(call, r);
          const u = r.usage;
          r.cost = u === undefined ? 0 : this.usage.record(call.fn.namespace, call.fn.name, call.req.priceClass, u.cpuMs, u.mbMs, clock.wallNow());
          // async attempts are recorded (and persisted) by the main thread's async invoker
          if (call.req.async !== true) {
            const rec = recordOf({ id: call.id, namespace: call.fn.namespace, function: call.fn.name, priceClass: call.req.priceClass, parentId: call.req.parentId }, r, clock.wallNow(), r.cost, call.sandbox?.node.name ?? null);
            this.ring.add(rec);
            this.metrics.activations.bind(rec.status).inc();
          }
        },
      },
    });
    this.calls = new CoreCalls(
      init.index,
      init.cores,
      this.dispatcher,
      this.peers,
      this.toMain,
      () => performance.now(),
      { classes: this.classes, admit: (ns, cls) => this.throttle.admit(ns, cls) },
      () => this.metrics.handedOver.inc(),
    );
    this.autoscaler = new AutoscalerLoop(this.dispatcher, clock, init.autoscalerTickMs);
    this.chains = new ChainCalls({
      runningCallOn: (node, id) => this.dispatcher.runningCallOn(node, id),
      invokeChild: (parent, key, req, reply) => this.calls.child(parent, key, req, reply),
      classes: this.classes,
      log: log.child({ component: 'chains' }),
      maxInvokeBodyBytes: init.maxInvokeBodyBytes,
      maxDepth: init.maxCallDepth,
    });
    this.links = new CoreLinks({
      index: init.index,
      log: log.child({ component: 'links' }),
      joinTokenHash: init.joinTokenHash,
      dispatcher: this.dispatcher,
      chains: this.chains,
      nodeOfSession: (s) => this.bySession.get(s),
      onLinkUp: (n, adopted, dropped) => this.toMain.send({ t: 'linkUp', slot: n.slot, gen: n.gen, adopted, dropped }),
      onLinkDown: (n, reason) => this.toMain.send({ t: 'linkDown', slot: n.slot, gen: n.gen, reason }),
      onBadFrame: () => this.metrics.badFrames.inc(),
      ...(o.linksApp === undefined ? {} : { app: o.linksApp }),
    });
    this.forwarder = new HttpForwarder({ host: '127.0.0.1', port: init.internalPort, maxBodyBytes: init.maxManagementBodyBytes, log: log.child({ component: 'forward' }) });
    this.app = uws.App();
    this.mountControlRelay();
    mountInvokeApi(this.app, { auth: this.auth, router: this, log, priceClasses: this.classes.names(), maxInvokeBodyBytes: init.maxInvokeBodyBytes });
    for (const method of ['get', 'head'] as const) {
      const head = method === 'head';
      this.app[method]('/healthz', (res) => new Exchange(res, head).json(200, { status: 'ok' }));
      this.app[method]('/readyz', (res) => {
        const ready = this.shared.readyCount();
        new Exchange(res, head).json(ready > 0 ? 200 : 503, ready > 0 ? { status: 'ready', workers: ready } : { status: 'not ready', reason: 'no worker has joined' });
      });
    }
    this.app.any('/*', (res, req) => this.forwarder.forward(res, req));
    this.autoscaler.start();
    this.usageTimer = setInterval(() => this.flushUsage(), USAGE_FLUSH_MS);
    this.usageTimer.unref();
  }

  /** Listen on the public port (SO_REUSEPORT, beside the other cores) and on this core's link port. */
  async start(): Promise<number> {
    const linkPort = await this.links.listen(this.init.host);
    const s = await new Promise<uws.us_listen_socket | false>((resolve) =>
      (this.app.listen as unknown as (h: string, p: number, o: number, cb: (s: uws.us_listen_socket | false) => void) => void).call(this.app, this.init.host, this.init.port, 0, resolve),
    );
    if (s === false) throw new BatonError('conflict', `scheduler core ${this.init.index}: cannot listen on ${this.init.host}:${this.init.port}`);
    this.listenSocket = s;
    return linkPort;
  }

  // ------------------------------------------------------------ InvokeRouter

  call(key: string, req: RoutedRequest, reply: (r: InvocationResult) => void): () => void {
    return this.calls.call(key, req, reply);
  }

  accept(key: string, req: RoutedRequest, callbackUrl: string | undefined): Promise<{ id: string; status: string }> {
    const { rid, answer } = this.mainReplies.open<{ id: string; status: string }>();
    this.toMain.send({ t: 'asyncAccept', rid, key, req: wireOf(req, performance.now()), priceClass: req.priceClass, callbackUrl });
    return answer;
  }

  // ------------------------------------------------------------ messages

  /** A batch from the main thread. */
  fromMain(data: unknown): void {
    receive<MainToCore>(data, (m) => this.handleMain(m), (e, m) => this.log.error({ err: e, t: m.t }, 'error handling a message from the main thread'));
  }

  /** A batch from core `from`. */
  fromPeer(from: number, data: unknown): void {
    receive<CoreToCore>(data, (m) => this.calls.fromPeer(from, m), (e, m) => this.log.error({ err: e, t: m.t, from }, 'error handling a message from another scheduler core'));
  }

  private handleMain(m: MainToCore): void {
    switch (m.t) {
      case 'functions':
        for (const cloned of m.records) {
          const r = internRecord(cloned, this.strings);
          const key = `${r.namespace}/${r.name}`;
          if (this.calls.owns(key)) this.dispatcher.upsertFunction(r);
        }
        return;
      case 'functionRemoved':
        if (this.calls.owns(m.key)) this.dispatcher.removeFunction(m.key);
        return;
      case 'nodeJoined': {
        const n = new NodeMirror(this.shared, m.slot, m.gen, m.id, m.name, m.memoryMb, m.session);
        this.mirrors.set(m.slot, n);
        this.bySession.set(m.session, n);
        this.links.nodeAnnounced(m.session);
        return;
      }
      case 'nodeReady': {
        const n = this.mirrors.get(m.slot);
        if (n === undefined || !n.current) return;
        n.status = 'ready';
        if (!this.ready.includes(n)) this.ready.push(n);
        this.dispatcher.retryWaiting();
        return;
      }
      case 'nodeDraining': {
        const n = this.mirrors.get(m.slot);
        if (n === undefined || !n.current) return;
        n.status = 'draining';
        this.unready(n);
        this.dispatcher.nodeDraining(n);
        return;
      }
      case 'nodeLost': {
        const n = this.mirrors.get(m.slot);
        if (n !== undefined) {
          // first: its cores are not given back, its busy counts not touched (the slot is reset)
          n.status = 'dead';
          this.unready(n);
          this.links.drop(n, m.reason);
          this.dispatcher.nodeLost(n, m.reason);
          this.mirrors.delete(m.slot);
          this.bySession.delete(n.session);
        }
        this.toMain.send({ t: 'nodeLostAck', slot: m.slot });
        return;
      }
      case 'retry':
        this.dispatcher.retryWaiting();
        return;
      case 'call':
        this.calls.fromMain(m.rid, m.key, m.id, m.req);
        return;
      case 'query':
        try {
          this.toMain.send({ t: 'reply', rid: m.rid, value: this.answer(m.query) });
        } catch (e) {
          this.toMain.send({ t: 'reply', rid: m.rid, error: replyError(e) });
        }
        return;
      case 'reply':
        this.mainReplies.settle(m.rid, m.value, m.error === undefined ? undefined : errorOfReply(m.error));
        return;
      case 'throttle':
        this.throttle.set(m.table);
        return;
      case 'authReset':
        this.auth.forgetUnknown();
        return;
      case 'wSend': {
        const ws = this.controlConns.get(m.conn);
        if (ws === undefined || ws.getUserData().closed) return;
        // a frame uWS had to drop (backpressure past the limit) would desynchronise the link: close it
        if (ws.send(m.data, true) === 2) ws.end(CloseCode.badFrame, 'control link backpressure limit');
        return;
      }
      case 'wEnd': {
        const ws = this.controlConns.get(m.conn);
        if (ws !== undefined && !ws.getUserData().closed) ws.end(m.code, m.reason.slice(0, 120));
        return;
      }
      case 'stop':
        this.stop();
        return;
    }
  }

  /** One autoscaler tick now (the memory benchmark drives its own ticks). */
  tickAutoscaler(): void {
    this.autoscaler.tick();
  }

  /** The workers this core knows now (for checks). */
  nodes(): NodeMirror[] {
    return [...this.mirrors.values()];
  }

  private unready(n: NodeMirror): void {
    const i = this.ready.indexOf(n);
    if (i !== -1) this.ready.splice(i, 1);
  }

  private answer(q: CoreQuery): unknown {
    const d = this.dispatcher;
    switch (q.q) {
      case 'functionStatus': {
        const out: Record<string, { sandboxes: number; ready: number; inflight: number; queued: number }> = {};
        for (const key of q.keys) {
          const fn = d.functions.get(key);
          if (fn === undefined) continue;
          let ready = 0;
          for (const sb of fn.sandboxes) if (sb.status === 'ready') ready++;
          out[key] = { sandboxes: fn.sandboxes.size, ready, inflight: fn.inflight, queued: fn.queued };
        }
        return out;
      }
      case 'sandboxes': {
        const rows = [];
        for (const sb of d.allSandboxes()) {
          if (q.namespace !== undefined && !sb.fn.key.startsWith(`${q.namespace}/`)) continue;
          rows.push({ id: sb.id, function: sb.fn.key, version: sb.record.version, nodeId: sb.node.id, node: sb.node.name, state: sb.status, inflight: sb.inflight, concurrency: sb.record.spec.concurrency, ...(sb.pid === undefined ? {} : { pid: sb.pid }), createdAt: sb.createdAt });
        }
        return rows;
      }
      case 'nodeStats': {
        const out: Record<string, [number, number]> = {};
        for (const n of this.mirrors.values()) out[n.id] = [n.sandboxes.size, n.inflight];
        return out;
      }
      case 'status': {
        let sandboxes = 0;
        let inflight = 0;
        let queued = 0;
        for (const fn of d.functions.values()) {
          if (q.namespace !== undefined && fn.record.namespace !== q.namespace) continue;
          sandboxes += fn.sandboxes.size;
          inflight += fn.inflight;
          queued += fn.queued;
        }
        return { sandboxes, inflight, queued };
      }
      case 'metrics': {
        const names = this.classes.names();
        const queuedByRank = names.map(() => 0);
        for (const fn of d.functions.values()) {
          if (fn.queued === 0) continue;
          for (let r = 0; r < names.length; r++) queuedByRank[r] = (queuedByRank[r] ?? 0) + fn.queuedOfRank(r);
        }
        const sandboxesByState: Record<string, number> = {};
        for (const sb of d.allSandboxes()) sandboxesByState[sb.status] = (sandboxesByState[sb.status] ?? 0) + 1;
        return { series: this.metrics.snapshot(), cpuSeconds: threadCpuSeconds().seconds, faults: { ...processFaults() }, queuedByRank, sandboxesByState, pendingPlacements: d.pendingPlacements };
      }
      case 'activation':
        return this.ring.get(q.namespace, q.id);
      case 'activations':
        return this.ring.list(q.namespace, q);
      case 'holders': {
        const fn = d.functions.get(q.key);
        const out = new Map<string, string>();
        if (fn !== undefined) for (const sb of fn.sandboxes) out.set(sb.node.id, sb.node.name);
        return [...out];
      }
      case 'usage':
        return this.usage.take();
      case 'ping':
        return true;
    }
  }

  private flushUsage(): void {
    const rows = this.usage.take();
    if (rows.length > 0) this.toMain.send({ t: 'usage', rows });
  }

  // ------------------------------------------------------------ control links

  /**
   * A worker's control link reaches whichever core the kernel picked for the
   * connection: this core checks the join token and relays the frames to the
   * main thread, which speaks the control protocol (hello, heartbeats,
   * bundles, logs), and writes what the main thread sends back.
   */
  private mountControlRelay(): void {
    this.app.ws<ControlConn>(WORKER_PATH, {
      maxPayloadLength: MAX_FRAME_BYTES,
      maxBackpressure: MAX_FRAME_BYTES,
      idleTimeout: 0,
      upgrade: (res, req, context) =>
        upgradeWorker<ControlConn>(res, req, context, this.init.joinTokenHash, this.log, 'worker', () => {
          const conn = this.nextConn;
          this.nextConn += this.init.cores;
          return { conn, closed: false };
        }),
      open: (ws) => {
        const c = ws.getUserData();
        this.controlConns.set(c.conn, ws);
        this.toMain.send({ t: 'wOpen', conn: c.conn, remote: Buffer.from(ws.getRemoteAddressAsText()).toString() });
      },
      message: (ws, message, isBinary) => {
        const c = ws.getUserData();
        if (c.closed) return;
        // uWS reuses the buffer after this callback: send a copy
        this.toMain.send({ t: 'wMsg', conn: c.conn, data: new Uint8Array(message.slice(0)), binary: isBinary });
      },
      close: (ws, code, message) => {
        const c = ws.getUserData();
        c.closed = true;
        this.controlConns.delete(c.conn);
        this.toMain.send({ t: 'wClosed', conn: c.conn, code, reason: Buffer.from(message).toString() });
      },
    });
  }

  // ------------------------------------------------------------ stop

  /** Close every socket (a thread cannot end while uWS holds one), then let the thread end. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.autoscaler.stop();
    clearInterval(this.usageTimer);
    this.flushUsage();
    this.calls.failAll(new BatonError('overloaded', 'the control plane is shutting down', { retryAfter: 1 }));
    this.mainReplies.failAll(new BatonError('overloaded', 'the control plane is shutting down', { retryAfter: 1 }));
    if (this.listenSocket !== undefined) uws.us_listen_socket_close(this.listenSocket);
    for (const ws of [...this.controlConns.values()]) {
      ws.getUserData().closed = true;
      ws.end(CloseCode.shuttingDown, 'control plane shutting down');
    }
    this.controlConns.clear();
    this.links.close();
    closeApp(this.app);
    this.forwarder.close();
    this.keys.close();
    this.toMain.close();
    for (const p of this.peers) p?.close();
  }
}
