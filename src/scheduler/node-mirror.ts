import type { NodeState, NodeStatus, SandboxState } from '../dataplane/types.js';
import type { ControlFrame } from '../protocol/messages.js';
import type { SharedNodes } from './shared-nodes.js';

/**
 * A worker as one scheduler core sees it: the sandboxes this core runs there
 * and the core's data link to it (`send`), over the worker's slot in the
 * shared node table, which holds what every core shares (cores, free memory,
 * busy cores by class, last heartbeat).
 * `busy`/`busyByRank` count this core's own sandboxes; the cluster-wide
 * counts are in the shared table (placement reads those).
 */
export class NodeMirror implements NodeState {
  status: NodeStatus = 'joining';
  readonly sandboxes = new Map<string, SandboxState>();
  inflight = 0;
  readonly bundles = new Set<string>();
  busyByRank: number[] = [];
  busy = 0;
  /** The data link's send, once the worker opened it. */
  send: (frame: ControlFrame) => boolean = () => false;
  /** The link is open and the worker said linkHello. */
  linked = false;

  constructor(
    private readonly shared: SharedNodes,
    readonly slot: number,
    readonly gen: number,
    readonly id: string,
    readonly name: string,
    /** Memory it offers its sandboxes (placement's view; what is free now is in the shared table). */
    readonly memoryMb: number,
    readonly session: string,
  ) {}

  /** On this thread's clock (performance.now()), like every monotonic time here. */
  get lastHeartbeat(): number {
    return this.shared.lastHeartbeat(this.slot) - performance.timeOrigin;
  }

  /** Still the worker session this mirror was made for (the slot is not reused while it lives). */
  get current(): boolean {
    return this.status !== 'dead' && this.status !== 'disconnected';
  }
}
