import { getHeapSpaceStatistics } from 'node:v8';
import { ClusterState } from './cluster-state.js';

/** The budgets: control-plane heap per sandbox and per function. */
export const BUDGETS = { sandboxBytes: 300, functionBytes: 2048 } as const;

export interface MemoryConfig {
  /** Emulated workers the sandboxes are spread over. */
  workers: number;
  /** Functions the sandboxes belong to. */
  functions: number;
  /** Sandboxes created and reported ready per function. */
  sandboxesPerFunction: number;
  /** Functions deployed, with no sandbox, for the per-function figure. */
  idleFunctions: number;
  /** Measured rounds (after one unmeasured warm-up round). */
  rounds: number;
}

/** Bytes of retained heap per object, over the measured rounds. */
export interface PerObject {
  mean: number;
  min: number;
  max: number;
  rounds: number[];
}

export interface MemoryFigures {
  perSandbox: PerObject;
  perFunction: PerObject;
  /** What a function with sandboxes adds once the autoscaler holds a full window of its history (on top of perFunction). */
  perActiveFunction: PerObject;
  /** Per worker connection, including the emulated link's own small objects (informational). */
  perWorker: PerObject;
  /** The used heap (outside code spaces) with everything in place, last round, bytes. */
  heapWithSandboxes: number;
  heapWithFunctions: number;
}

/**
 * V8's used heap outside its code spaces: compiled code is not state, and
 * how much of it the optimizing compiler produces during a round would only
 * add noise.
 */
function usedHeap(): number {
  let used = 0;
  for (const s of getHeapSpaceStatistics()) if (!s.space_name.startsWith('code')) used += s.space_used_size;
  return used;
}

/**
 * Full collections until the heap stops shrinking: what is left is what
 * something still holds. Each after a turn of the event loop, so that what
 * ended in the previous one (closed thread pools, timers, weak references
 * kept for the rest of a job) is gone.
 */
async function retainedHeap(gc: () => void): Promise<number> {
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 10));
    gc();
    const used = usedHeap();
    if (used >= last) return used;
    last = used;
  }
  return last;
}

interface SandboxRound {
  perSandbox: number;
  perWorker: number;
  perActiveFunction: number;
  heap: number;
}

/** Autoscaler ticks in a stable window: 60 s at one tick a second (the defaults). */
const TICKS_PER_WINDOW = 60;

/**
 * Functions are deployed (each keeping its sandboxes warm with scale.min),
 * workers join, then (heap measured before and after) every function gets
 * its sandboxes, created through the dispatcher and reported ready by their
 * workers through the gateway; last, the autoscaler ticks through a stable
 * window.
 */
async function sandboxRound(cfg: MemoryConfig, gc: () => void): Promise<SandboxRound> {
  const s = new ClusterState();
  try {
    await s.deployFunctions(cfg.functions, cfg.sandboxesPerFunction);
    const h0 = await retainedHeap(gc);
    await s.connectWorkers(cfg.workers);
    const h1 = await retainedHeap(gc);
    const created = s.createSandboxes(cfg.sandboxesPerFunction);
    const h2 = await retainedHeap(gc);
    checkSandboxes(s, created);
    s.tickAutoscaler(TICKS_PER_WINDOW);
    const h3 = await retainedHeap(gc);
    checkSandboxes(s, created);
    return { perSandbox: (h2 - h1) / created, perWorker: (h1 - h0) / cfg.workers, perActiveFunction: (h3 - h2) / cfg.functions, heap: h2 };
  } finally {
    await s.close();
  }
}

function checkSandboxes(s: ClusterState, expected: number): void {
  const all = [...s.dispatcher.allSandboxes()];
  const ready = all.filter((sb) => sb.status === 'ready').length;
  if (all.length !== expected || ready !== expected) throw new Error(`expected ${expected} ready sandboxes, the dispatcher has ${all.length} (${ready} ready)`);
  let onNodes = 0;
  for (const n of s.nodeStates()) onNodes += n.sandboxes.size;
  if (onNodes !== expected) throw new Error(`the nodes hold ${onNodes} sandboxes, expected ${expected}`);
  for (const fn of s.runtimes()) if (fn.freeCount !== fn.sandboxes.size) throw new Error(`${fn.key}: ${fn.freeCount} free of ${fn.sandboxes.size} sandboxes`);
}

async function functionRound(cfg: MemoryConfig, gc: () => void): Promise<{ perFunction: number; heap: number }> {
  const s = new ClusterState();
  try {
    // warm the deploy path (bundle thread pool, prepared statements) before the baseline
    await s.deployFunctions(1);
    const h0 = await retainedHeap(gc);
    await s.deployFunctions(cfg.idleFunctions);
    const h1 = await retainedHeap(gc);
    if (s.dispatcher.functions.size !== cfg.idleFunctions + 1) throw new Error(`expected ${cfg.idleFunctions + 1} functions, the dispatcher has ${s.dispatcher.functions.size}`);
    return { perFunction: (h1 - h0) / cfg.idleFunctions, heap: h1 };
  } finally {
    await s.close();
  }
}

function perObject(values: number[]): PerObject {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const r = (v: number): number => Math.round(v * 10) / 10;
  return { mean: r(mean), min: r(Math.min(...values)), max: r(Math.max(...values)), rounds: values.map(r) };
}

/** The warm-up round: every path taken a few thousand times, on a smaller cluster. */
function warmUp(cfg: MemoryConfig): MemoryConfig {
  return {
    workers: Math.min(cfg.workers, 100),
    functions: Math.min(cfg.functions, 20),
    sandboxesPerFunction: Math.min(cfg.sandboxesPerFunction, 100),
    idleFunctions: Math.min(cfg.idleFunctions, 200),
    rounds: 0,
  };
}

/**
 * The measurement itself; needs a process started with --expose-gc (pass its
 * `gc`). An unmeasured warm-up round comes first: what the first use of each
 * path allocates once (feedback vectors, inline caches, hidden classes,
 * prepared statements) would otherwise be counted in the first round.
 */
export async function measureMemory(cfg: MemoryConfig, gc: () => void, progress: (line: string) => void = () => undefined): Promise<MemoryFigures> {
  const sandboxes: number[] = [];
  const functions: number[] = [];
  const workers: number[] = [];
  const active: number[] = [];
  let heapWithSandboxes = 0;
  let heapWithFunctions = 0;
  for (let round = 0; round <= cfg.rounds; round++) {
    const c = round === 0 ? warmUp(cfg) : cfg;
    const sr = await sandboxRound(c, gc);
    const fr = await functionRound(c, gc);
    const label = round === 0 ? 'warm-up' : `round ${round}/${cfg.rounds}`;
    progress(`${label}: ${sr.perSandbox.toFixed(1)} B/sandbox, ${fr.perFunction.toFixed(1)} B/function (+${sr.perActiveFunction.toFixed(0)} B when active), ${sr.perWorker.toFixed(0)} B/worker`);
    if (round === 0) continue;
    sandboxes.push(sr.perSandbox);
    functions.push(fr.perFunction);
    workers.push(sr.perWorker);
    active.push(sr.perActiveFunction);
    heapWithSandboxes = sr.heap;
    heapWithFunctions = fr.heap;
  }
  return { perSandbox: perObject(sandboxes), perFunction: perObject(functions), perActiveFunction: perObject(active), perWorker: perObject(workers), heapWithSandboxes, heapWithFunctions };
}
