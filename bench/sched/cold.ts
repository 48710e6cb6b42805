/**
 * Cold invocations per second through the real data plane, no network: the
 * second measurement of `baton bench sched`. The main thread builds the
 * cluster's shared capacity as the control plane's does (NodeRegistry:
 * `connect` opens a slot in SharedNodes, `linkUp` adds the worker's cores to
 * the SharedCorePool and marks the slot ready) and starts one thread per
 * scheduler core (cold-thread.ts), each with a Dispatcher + CorePlacement on
 * its shard of the pool. While they run, the main thread writes every slot's
 * free memory back as a worker's heartbeat would (SharedNodes.report); after
 * they stop, it checks that the threads left no state behind and that the
 * pool is whole again.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PriceClassSet } from '../../src/policies/price-classes.js';
import { MAX_CORES, SharedCorePool } from '../../src/scheduler/shared-core-pool.js';
import { SharedNodes, SlotState } from '../../src/scheduler/shared-nodes.js';

/** Int32 slots of the control buffer the threads of one run share: threads set up, start signal, stop signal. */
export const COLD_CONTROL = { ready: 0, go: 1, stop: 2, ints: 4 } as const;

/** Cores per machine in the pool's layout (the control plane's default). */
export const POOL_CORES_PER_MACHINE = 64;
/** Most worker slots the pool's layout allows at POOL_CORES_PER_MACHINE. */
export const MAX_COLD_NODES = Math.floor(MAX_CORES / POOL_CORES_PER_MACHINE);
/**
 * Each worker's memory by default, MB: the most a SharedNodes slot holds.
 * Placement takes 64 MB per new sandbox and only a heartbeat gives it back;
 * with one call in flight per thread, every placement of a thread lands on
 * the same worker (the pool hands out its shard's lowest idle core), so the
 * memory must outlast a heartbeat period of cold starts on one worker.
 */
export const COLD_NODE_MEMORY_MB = 2 ** 31 - 1;
/** How often the main thread writes every slot's free memory back (the control plane's default heartbeat). */
export const COLD_HEARTBEAT_MS = 1000;

export interface ColdTask {
  nodes: SharedArrayBuffer;
  pool: SharedArrayBuffer;
  /** COLD_CONTROL.ints Int32s. */
  control: SharedArrayBuffer;
  /** The thread's scheduler core index: its shard of the pool. */
  shard: number;
  /** Functions this thread owns; invoked in turn. */
  functions: number;
  /** Each worker's memory, MB (what its mirror says). */
  memoryMb: number;
  warmupMs: number;
  seed: number;
}

export interface ColdThreadResult {
  /** Cold invocations completed while measured. */
  cold: number;
  /** Before that, in the warm-up. */
  warmupCold: number;
  seconds: number;
  /** Cores this thread's shard took from another shard's list while measured. */
  steals: number;
  /** CPU time of the whole process (every thread) during this thread's measured window. */
  processCpuSeconds: number;
  /** Sandboxes created (onSandboxCreated) and gone (onSandboxGone), and calls answered, warm-up included. */
  created: number;
  gone: number;
  answered: number;
  /** The dispatcher's sandboxes after the run. */
  sandboxesLeft: number;
  /** Worker slots this thread placed a sandbox on. */
  slotsUsed: number;
  /** What the thread found wrong in its own state after the run (none when consistent). */
  problems: string[];
}

export interface ColdRunOptions {
  threads: number;
  /** Worker slots in SharedNodes, each a machine of the pool. */
  nodes: number;
  /** Cores each worker offers. */
  nodeCores: number;
  /** Functions per thread. */
  functions: number;
  durationMs: number;
  warmupMs: number;
  /** Each worker's memory, MB (default COLD_NODE_MEMORY_MB). */
  nodeMemoryMb?: number;
  seed?: number;
}

export interface ColdRun {
  threads: ColdThreadResult[];
  /** Heartbeat-like rounds in which the main thread wrote every slot's memory back. */
  memoryReports: number;
  /** SharedCorePool.audit() after the run. */
  audit: string[];
  idleCores: number;
  totalCores: number;
  /** Σ over slots of SharedNodes.busy after the run. */
  busyLeft: number;
}

/** The compiled thread script: beside this file when compiled, else under dist/ (tests run from the sources). */
function threadScript(): string {
  const beside = fileURLToPath(new URL('./cold-thread.js', import.meta.url));
  if (existsSync(beside)) return beside;
  const built = fileURLToPath(new URL('../../dist/bench/sched/cold-thread.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error('bench/sched/cold-thread.js is not built; run `npm run build` first');
}

/**
 * Build the shared capacity, run `threads` scheduler threads for the warm-up
 * and then `durationMs`, and check the state they leave. Throws, naming every
 * problem, if a thread fails or leaves anything behind, or if the pool is not
 * whole again (audit clean, every core idle, in its own shard's list) or a
 * worker's shared busy count is not zero.
 */
export async function runColdThreads(o: ColdRunOptions): Promise<ColdRun> {
  if (o.nodeCores > POOL_CORES_PER_MACHINE) throw new RangeError(`workers of ${o.nodeCores} cores: the pool places on at most ${POOL_CORES_PER_MACHINE} per worker`);
  const memoryMb = o.nodeMemoryMb ?? COLD_NODE_MEMORY_MB;
  const classes = new PriceClassSet();
  const shared = SharedNodes.create(o.nodes, classes.size);
  const pool = SharedCorePool.createEmpty(o.threads, o.nodes, POOL_CORES_PER_MACHINE);
  const abs = (): number => performance.timeOrigin + performance.now();
  // as NodeRegistry: connect (open the slot), then linkUp (cores into the pool, slot ready)
  for (let slot = 0; slot < o.nodes; slot++) {
    shared.open(slot, o.nodeCores, memoryMb, abs());
    pool.withdraw(slot);
    pool.addCores(slot, o.nodeCores);
    shared.setState(slot, SlotState.ready);
  }
  const totalCores = o.nodes * o.nodeCores;
  const controlBuffer = new SharedArrayBuffer(COLD_CONTROL.ints * 4);
  const control = new Int32Array(controlBuffer);
  const script = threadScript();
  const workers: Worker[] = [];
  let readyCount = 0;
  let onAllReady: () => void = () => undefined;
  const allReady = new Promise<void>((resolve) => (onAllReady = resolve));
  const timeoutMs = o.warmupMs + o.durationMs + 60_000;
  let deadline: NodeJS.Timeout | undefined;
  const overtime = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => reject(new Error(`scheduler threads still running ${timeoutMs} ms after the start`)), timeoutMs);
  });
  const results = Array.from({ length: o.threads }, (_, shard) => {
    const task: ColdTask = { nodes: shared.buffer, pool: pool.buffer, control: controlBuffer, shard, functions: o.functions, memoryMb, warmupMs: o.warmupMs, seed: o.seed ?? 1 };
    const w = new Worker(script, { workerData: { batonColdSched: task } });
    workers.push(w);
    return new Promise<ColdThreadResult>((resolve, reject) => {
      let result: ColdThreadResult | undefined;
      w.on('message', (m: { ready?: true; result?: ColdThreadResult }) => {
        if (m.ready === true && ++readyCount === o.threads) onAllReady();
        if (m.result !== undefined) result = m.result;
      });
      w.on('error', (e) => reject(e instanceof Error ? e : new Error(String(e))));
      w.on('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`scheduler thread ${shard} exited with code ${code} before reporting a result`))));
    });
  });
  const all = Promise.all(results);
  let memoryReports = 0;
  let heartbeat: NodeJS.Timeout | undefined;
  let stopTimer: NodeJS.Timeout | undefined;
  let threads: ColdThreadResult[];
  try {
    await Promise.race([allReady, all, overtime]);
    // heartbeats: every worker reports its memory free again (the sandboxes placed meanwhile are gone)
    heartbeat = setInterval(() => {
      const now = abs();
      for (let slot = 0; slot < o.nodes; slot++) shared.report(slot, memoryMb, now);
      memoryReports++;
    }, COLD_HEARTBEAT_MS);
    Atomics.store(control, COLD_CONTROL.go, 1);
    Atomics.notify(control, COLD_CONTROL.go);
    stopTimer = setTimeout(() => Atomics.store(control, COLD_CONTROL.stop, 1), o.warmupMs + o.durationMs);
    threads = await Promise.race([all, overtime]);
  } catch (e) {
    Atomics.store(control, COLD_CONTROL.stop, 1);
    Atomics.store(control, COLD_CONTROL.go, 1);
    Atomics.notify(control, COLD_CONTROL.go);
    await Promise.allSettled(workers.map((w) => w.terminate()));
    throw e;
  } finally {
    clearInterval(heartbeat);
    clearTimeout(stopTimer);
    clearTimeout(deadline);
  }

  const problems: string[] = [];
  threads.forEach((r, i) => {
    for (const p of r.problems) problems.push(`thread ${i}: ${p}`);
    if (r.cold <= 0) problems.push(`thread ${i}: no cold invocation measured`);
  });
  const audit = pool.audit();
  problems.push(...audit.map((p) => `pool: ${p}`));
  const idleCores = pool.idleTotal();
  if (idleCores !== totalCores) problems.push(`pool: ${idleCores} of ${totalCores} cores idle after the run`);
  for (let s = 0; s < o.threads; s++) {
    // shard s has the machines s, s + threads, …, each with nodeCores cores
    const want = Math.ceil((o.nodes - s) / o.threads) * o.nodeCores;
    if (pool.idleOn(s) !== want) problems.push(`pool: shard ${s} has ${pool.idleOn(s)} idle cores, expected ${want}`);
  }
  let busyLeft = 0;
  for (let slot = 0; slot < o.nodes; slot++) {
    const busy = shared.busy(slot);
    busyLeft += busy;
    let ranks = 0;
    for (let r = 0; r < shared.ranks; r++) ranks += Math.abs(shared.busyOfRank(slot, r));
    if (busy !== 0 || ranks !== 0) problems.push(`worker slot ${slot}: shared busy count ${busy}, busy by rank ${ranks} after the run`);
  }
  if (problems.length > 0) throw new Error(`cold invocations with ${o.threads} thread(s): state inconsistent after the run: ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? `; and ${problems.length - 20} more` : ''}`);
  return { threads, memoryReports, audit, idleCores, totalCores, busyLeft };
}
