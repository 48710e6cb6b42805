import type { Engine } from '../engine.js';
import type { SimMetrics } from '../metrics.js';
import type { Invocation } from '../workload.js';

export interface ModelContext {
  engine: Engine;
  metrics: SimMetrics;
  /** Check invariants after every change (tests; slower). */
  check: boolean;
}

/** A cluster scheduler under simulation. */
export interface SchedulerModel {
  readonly name: string;
  arrive(inv: Invocation): void;
  /** Invocations still queued or running. */
  outstanding(): number;
}

export class InvariantError extends Error {}

export function invariant(cond: boolean, message: string): void {
  if (!cond) throw new InvariantError(message);
}
