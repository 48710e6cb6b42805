import type { Clock } from '../common/clock.js';
import { BatonError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import type { NodeStatus } from '../dataplane/types.js';
import type { ControlFrame, HelloFrame } from '../protocol/messages.js';
import type { MainToCore } from '../scheduler/core-messages.js';
import type { SharedCorePool } from '../scheduler/shared-core-pool.js';
import { SlotState, type SharedNodes } from '../scheduler/shared-nodes.js';

/** A worker as the main thread knows it (its control link); the scheduler cores keep their own views (NodeMirror). */
export interface WorkerNode {
  id: string;
  name: string;
  runtime: 'process' | 'emulated';
  cores: number;
  memoryMb: number;
  freeMemoryMb: number;
  status: NodeStatus;
  /** Monotonic ms of this thread. */
  lastHeartbeat: number;
  connectedAt: number;
  waiting: number;
  preemptions: number;
  /** Its slot in the shared node table and core pool for the current session, -1 between sessions. */
  slot: number;
  gen: number;
  /** Named in the welcome; each data link's linkHello names it. */
  session: string;
  /** Scheduler cores whose data link is up in this session. */
  linksUp: number;
  adopted: number;
  dropped: number;
  /** Over the control link. */
  send(frame: ControlFrame): boolean;
}

export interface NodeRegistryOptions {
  clock: Clock;
  log: Logger;
  shared: SharedNodes;
  pool: SharedCorePool;
  /** Scheduler cores: a worker is ready once it has a data link to each. */
  cores: number;
  broadcast(m: MainToCore): void;
  /** A node silent this long is declared dead and its sandboxes are forgotten. */
  heartbeatTimeoutMs: number;
}

/**
 * Workers known to the control plane, on the main thread. A worker says
 * hello on its control link and gets a slot in the shared capacity
 * (SharedNodes, SharedCorePool) for that session; it is ready — its cores in
 * the pool, every scheduler core told — once it has opened a data link to
 * every core. When the session ends (disconnect, missed heartbeats, a new
 * hello of the same node), its idle cores are withdrawn, every core forgets
 * its sandboxes there, and the slot is reused only after every core said so
 * (so no core can touch a newer worker's slot with an old claim). A
 * disconnected worker keeps its record until the heartbeat timeout (`baton
 * nodes` shows it); a worker silent for longer is declared dead and removed.
 */
export class NodeRegistry {
  private readonly nodes = new Map<string, WorkerNode>();
  private readonly bySlot = new Map<number, WorkerNode>();
  private readonly free: number[] = [];
  /** Slots whose session ended, waiting for every core's nodeLostAck: slot → cores still to answer. */
  private readonly releasing = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly poolCores: number;
  private warnedCores = false;

  constructor(private readonly o: NodeRegistryOptions) {
    for (let s = o.shared.slots - 1; s >= 0; s--) this.free.push(s);
    this.poolCores = o.pool.coresPerMachine;
  }

  all(): IterableIterator<WorkerNode> {
    return this.nodes.values();
  }

  get(id: string): WorkerNode | undefined {
    return this.nodes.get(id);
  }

  readyCount(): number {
    let n = 0;
    for (const node of this.nodes.values()) if (node.status === 'ready') n++;
    return n;
  }

  private abs(): number {
    return performance.timeOrigin + this.o.clock.now();
  }

  /** A worker said hello: a new session in a fresh slot (an older session of the same node ends first). */
  connect(hello: HelloFrame, send: WorkerNode['send']): WorkerNode {
    const now = this.o.clock.now();
    let node = this.nodes.get(hello.nodeId);
    if (node !== undefined) this.endSession(node, `worker ${node.name} reconnected`);
    const slot = this.free.pop();
    if (slot === undefined) throw new BatonError('no_capacity', `this control plane tracks at most ${this.o.shared.slots} workers at once (--max-workers); worker ${hello.name || hello.nodeId} cannot join`);
    if (hello.cores > this.poolCores && !this.warnedCores) {
      this.warnedCores = true;
      this.o.log.warn({ node: hello.name, cores: hello.cores, scheduled: this.poolCores }, `a worker offers more cores than the control plane schedules per worker; ${this.poolCores} of them are placed on (its machine scheduler still uses them all)`);
    }
    const gen = this.o.shared.open(slot, hello.cores, hello.memoryMb, this.abs());
    const fields = {
      name: hello.name || hello.nodeId,
      runtime: hello.runtime,
      cores: hello.cores,
      memoryMb: hello.memoryMb,
      freeMemoryMb: hello.memoryMb,
      lastHeartbeat: now,
      connectedAt: now,
      slot,
      gen,
      session: newId('ses'),
      linksUp: 0,
      adopted: 0,
      dropped: 0,
      send,
    };
    if (node === undefined) {
      node = { id: hello.nodeId, status: 'joining', waiting: 0, preemptions: 0, ...fields };
      this.nodes.set(node.id, node);
    } else {
      Object.assign(node, fields);
      node.status = 'joining';
    }
    this.bySlot.set(slot, node);
    this.o.broadcast({ t: 'nodeJoined', slot, gen, id: node.id, name: node.name, memoryMb: node.memoryMb, session: node.session });
    return node;
  }

  /** A core's data link of this session is up; with the last one the worker is ready. True when it just became ready. */
  linkUp(slot: number, gen: number, adopted: number, dropped: number): WorkerNode | undefined {
    const node = this.bySlot.get(slot);
    if (node === undefined || node.gen !== gen || node.status !== 'joining') return undefined;
    node.linksUp++;
    node.adopted += adopted;
    node.dropped += dropped;
    if (node.linksUp < this.o.cores) return undefined;
    this.o.pool.withdraw(slot);
    this.o.pool.addCores(slot, Math.min(node.cores, this.poolCores));
    this.o.shared.setState(slot, SlotState.ready);
    node.status = 'ready';
    this.o.broadcast({ t: 'nodeReady', slot });
    return node;
  }

  /** The node of a slot's current session, if that session is `gen`. */
  ofSlot(slot: number, gen: number): WorkerNode | undefined {
    const node = this.bySlot.get(slot);
    return node !== undefined && node.gen === gen ? node : undefined;
  }

  heartbeat(node: WorkerNode, f: { freeMemoryMb: number; waiting?: number | undefined; preemptions?: number | undefined }): void {
    node.lastHeartbeat = this.o.clock.now();
    const freed = f.freeMemoryMb > node.freeMemoryMb;
    node.freeMemoryMb = f.freeMemoryMb;
    node.waiting = f.waiting ?? 0;
    node.preemptions = f.preemptions ?? 0;
    if (node.slot >= 0) this.o.shared.report(node.slot, f.freeMemoryMb, this.abs());
    // memory came back: sandboxes waiting for room may fit now
    if (freed && node.status === 'ready') this.o.broadcast({ t: 'retry' });
  }

  /** The worker is stopping: no new sandboxes on it; its sandboxes drain and go. */
  draining(node: WorkerNode, timeoutMs: number): void {
    if (node.status !== 'ready' && node.status !== 'joining') return;
    node.status = 'draining';
    if (node.slot >= 0) {
      this.o.shared.setState(node.slot, SlotState.draining);
      this.o.pool.withdraw(node.slot);
      this.o.broadcast({ t: 'nodeDraining', slot: node.slot });
    }
    this.o.log.info({ node: node.name, nodeId: node.id, timeoutMs }, 'worker draining: finishing its calls before it stops');
  }

  /**
   * The control link closed (or a data link did). The node's sandboxes are
   * forgotten at once and their in-flight calls failed (their results can no
   * longer arrive); if the worker comes back, it reports the sandboxes it
   * still has and they are adopted again.
   */
  disconnected(node: WorkerNode, reason: string): void {
    if (node.status === 'disconnected' || node.status === 'dead') return;
    node.status = 'disconnected';
    node.send = () => false;
    this.o.log.warn({ node: node.name, nodeId: node.id, reason }, 'worker disconnected');
    this.endSession(node, `connection to worker ${node.name} lost`);
  }

  /** Its session's slot goes: idle cores withdrawn, every core forgets it; reused once every core has answered. */
  private endSession(node: WorkerNode, reason: string): void {
    const slot = node.slot;
    if (slot < 0) return;
    node.slot = -1;
    node.linksUp = 0;
    this.bySlot.delete(slot);
    this.o.shared.setState(slot, SlotState.gone);
    this.o.pool.withdraw(slot);
    this.releasing.set(slot, this.o.cores);
    this.o.broadcast({ t: 'nodeLost', slot, reason });
  }

  /** A core forgot a slot's worker: when every core has, the slot is clean and free. */
  lostAck(slot: number): void {
    const left = (this.releasing.get(slot) ?? 1) - 1;
    if (left > 0) {
      this.releasing.set(slot, left);
      return;
    }
    this.releasing.delete(slot);
    this.reclaim(slot, 0);
  }

  /**
   * Withdraw every core of the slot a holder gave back before it heard of
   * the loss, then free the slot. A withdraw can miss a core another thread
   * had reserved at that instant (SharedCorePool.withdraw): look again shortly
   * until none is left idle, so a new worker in the slot starts clean.
   */
  private reclaim(slot: number, attempt: number): void {
    this.o.pool.withdraw(slot);
    if (this.o.pool.idleOnMachine(slot) > 0 && attempt < 100) {
      setTimeout(() => this.reclaim(slot, attempt + 1), 10).unref();
      return;
    }
    this.o.shared.setState(slot, SlotState.free);
    this.free.push(slot);
  }

  /** Declare silent nodes dead. Returns the ones removed. */
  sweep(): WorkerNode[] {
    const now = this.o.clock.now();
    const dead: WorkerNode[] = [];
    for (const node of this.nodes.values()) {
      if (now - node.lastHeartbeat > this.o.heartbeatTimeoutMs) dead.push(node);
    }
    for (const node of dead) {
      this.o.log.warn({ node: node.name, nodeId: node.id, silentMs: Math.round(now - node.lastHeartbeat) }, 'worker declared dead: missed heartbeats');
      node.status = 'dead';
      this.nodes.delete(node.id);
      this.endSession(node, `worker ${node.name} declared dead`);
    }
    return dead;
  }

  start(onDead: (node: WorkerNode) => void): void {
    const period = Math.max(50, Math.floor(this.o.heartbeatTimeoutMs / 4));
    this.timer = setInterval(() => {
      for (const n of this.sweep()) onDead(n);
    }, period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
