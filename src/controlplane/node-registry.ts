import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import type { Dispatcher } from '../dataplane/dispatcher.js';
import type { NodeState } from '../dataplane/types.js';
import type { HelloFrame } from '../protocol/messages.js';

export interface NodeRegistryOptions {
  clock: Clock;
  log: Logger;
  dispatcher: Dispatcher;
  /** A node silent this long is declared dead and its sandboxes are forgotten. */
  heartbeatTimeoutMs: number;
  /** A worker reported its free memory (idle-list membership follows it). */
  onMemoryReport?(node: NodeState): void;
  /** A node left the ready set. */
  onUnready?(node: NodeState): void;
}

/**
 * Workers known to the control plane. A disconnected worker keeps its record
 * until the heartbeat timeout (so `baton nodes` shows it as disconnected); a
 * worker silent for longer is declared dead and removed.
 */
export class NodeRegistry {
  private readonly nodes = new Map<string, NodeState>();
  private readonly ready: NodeState[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: NodeRegistryOptions) {}

  all(): IterableIterator<NodeState> {
    return this.nodes.values();
  }

  get(id: string): NodeState | undefined {
    return this.nodes.get(id);
  }

  /** Ready nodes, for placement. */
  readyNodes(): readonly NodeState[] {
    return this.ready;
  }

  /** A worker said hello. Returns the node record, replacing an older connection of the same node. */
  connect(hello: HelloFrame, send: NodeState['send']): NodeState {
    const now = this.opts.clock.now();
    let node = this.nodes.get(hello.nodeId);
    if (node === undefined) {
      node = {
        id: hello.nodeId,
        name: hello.name || hello.nodeId,
        runtime: hello.runtime,
        cores: hello.cores,
        memoryMb: hello.memoryMb,
        freeMemoryMb: hello.memoryMb,
        status: 'ready',
        lastHeartbeat: now,
        connectedAt: now,
        sandboxes: new Map(),
        inflight: 0,
        bundles: new Set(),
        busyByRank: [],
        busy: 0,
        waiting: 0,
        preemptions: 0,
        send,
      };
      this.nodes.set(node.id, node);
    } else {
      // Sandboxes were forgotten when the old connection went; the hello report re-adopts them.
      this.opts.dispatcher.nodeLost(node, `worker ${node.name} reconnected`);
      Object.assign(node, { name: hello.name || hello.nodeId, runtime: hello.runtime, cores: hello.cores, memoryMb: hello.memoryMb, send, lastHeartbeat: now, connectedAt: now });
    }
    this.setStatus(node, 'ready');
    return node;
  }

  heartbeat(node: NodeState, f: { freeMemoryMb: number; waiting?: number | undefined; preemptions?: number | undefined }): void {
    node.lastHeartbeat = this.opts.clock.now();
    const freed = f.freeMemoryMb > node.freeMemoryMb;
    node.freeMemoryMb = f.freeMemoryMb;
    node.waiting = f.waiting ?? 0;
    node.preemptions = f.preemptions ?? 0;
    this.opts.onMemoryReport?.(node);
    // memory came back: sandboxes waiting for room may fit now
    if (freed) this.opts.dispatcher.retryWaiting();
  }

  /** The worker is stopping: no new sandboxes on it; its sandboxes drain and go. */
  draining(node: NodeState, timeoutMs: number): void {
    if (node.status !== 'ready') return;
    this.setStatus(node, 'draining');
    this.opts.log.info({ node: node.name, nodeId: node.id, timeoutMs }, 'worker draining: finishing its calls before it stops');
    this.opts.dispatcher.nodeDraining(node);
  }

  /**
   * The connection closed. The node's sandboxes are forgotten at once and their
   * in-flight calls failed (their results can no longer arrive); if the worker
   * comes back, it reports the sandboxes it still has and they are adopted again.
   */
  disconnected(node: NodeState, reason: string): void {
    this.setStatus(node, 'disconnected');
    node.send = () => false;
    this.opts.log.warn({ node: node.name, nodeId: node.id, reason }, 'worker disconnected');
    this.opts.dispatcher.nodeLost(node, `connection to worker ${node.name} lost`);
  }

  private setStatus(node: NodeState, status: NodeState['status']): void {
    if (node.status === status && (status !== 'ready' || this.ready.includes(node))) return;
    node.status = status;
    const i = this.ready.indexOf(node);
    if (status === 'ready' && i === -1) this.ready.push(node);
    if (status !== 'ready' && i !== -1) {
      this.ready.splice(i, 1);
      this.opts.onUnready?.(node);
    }
  }

  /** Declare silent nodes dead. Returns the ones removed. */
  sweep(): NodeState[] {
    const now = this.opts.clock.now();
    const dead: NodeState[] = [];
    for (const node of this.nodes.values()) {
      if (now - node.lastHeartbeat > this.opts.heartbeatTimeoutMs) dead.push(node);
    }
    for (const node of dead) {
      this.opts.log.warn({ node: node.name, nodeId: node.id, silentMs: Math.round(now - node.lastHeartbeat) }, 'worker declared dead: missed heartbeats');
      this.setStatus(node, 'dead');
      this.nodes.delete(node.id);
      this.opts.dispatcher.nodeLost(node, `worker ${node.name} declared dead`);
    }
    return dead;
  }

  start(onDead: (node: NodeState) => void): void {
    const period = Math.max(50, Math.floor(this.opts.heartbeatTimeoutMs / 4));
    this.timer = setInterval(() => {
      for (const n of this.sweep()) onDead(n);
    }, period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
