/**
 * The body of one thread that exercises a core pool: the worker_threads entry
 * behind `runStressThreads` and `runTimedThreads` (pool-exercise.ts), used by the shared pool's stress
 * test and by `baton bench sched`. It is a compiled script like the sandbox
 * runners: threads start it from dist/ (see compiledSibling), because Node does
 * not run a TypeScript file given to `new Worker`.
 *
 * Two tasks:
 * - stress: a fixed number of random acquires and releases on a shared pool,
 *   with an over-commit detector — after acquiring core c the thread claims
 *   `owners[c]` with compareExchange(0 → its id) and throws if another thread
 *   owned it; it gives the slot back before releasing c.
 * - timed: decisions per second. The thread keeps `hold` cores claimed and,
 *   until told to stop, releases its oldest one and acquires another (one
 *   decision = that release + acquire), on the shared pool or on the
 *   sequential `CorePool` (one thread only, a baseline).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CorePool } from '../policies/core-pool.js';
import { CONTROL, type PoolTaskResult, type StressResult, type StressTask, type ThreadData, type TimedResult, type TimedTask } from './pool-exercise.js';
import { SharedCorePool } from './shared-core-pool.js';

interface Pool {
  acquire(shard: number): number;
  release(core: number): void;
  idleOn(shard: number): number;
}

/** xorshift32: a reproducible sequence of choices per thread. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function stress(t: StressTask, control: Int32Array): StressResult {
  const pool = SharedCorePool.attach(t.pool);
  signalReadyAndWait(control);
  const owners = new Int32Array(t.owners);
  const next = rng(t.seed);
  const held = new Int32Array(t.hold);
  let n = 0;
  const r: StressResult = { acquired: 0, released: 0, empty: 0 };
  const give = (j: number): void => {
    const c = held[j] as number;
    held[j] = held[n - 1] as number;
    n--;
    const was = Atomics.compareExchange(owners, c, t.threadId, 0);
    if (was !== t.threadId) throw new Error(`thread ${t.threadId}: owner slot of core ${c}, which it holds, reads ${was}`);
    pool.release(c);
    r.released++;
  };
  for (let op = 0; op < t.ops; op++) {
    if (n === t.hold || (n > 0 && (next() & 1) === 0)) {
      give(next() % n);
      continue;
    }
    const c = pool.acquire(t.shard);
    if (c === -1) {
      r.empty++;
      continue;
    }
    const was = Atomics.compareExchange(owners, c, 0, t.threadId);
    if (was !== 0) throw new Error(`over-commit: thread ${t.threadId} (shard ${t.shard}) acquired core ${c}, which thread ${was} holds`);
    held[n++] = c;
    r.acquired++;
  }
  while (n > 0) give(n - 1);
  return r;
}

function timed(t: TimedTask, control: Int32Array): TimedResult {
  const shared = t.pool instanceof SharedArrayBuffer ? SharedCorePool.attach(t.pool) : undefined;
  const pool: Pool = shared ?? (() => {
    const d = t.pool as { shards: number; machines: number; coresPerMachine: number };
    return new CorePool(d.shards, d.machines, d.coresPerMachine);
  })();
  const drained: number[] = [];
  if (t.drainOwn) while (pool.idleOn(t.shard) > 0) drained.push(pool.acquire(t.shard));
  signalReadyAndWait(control);
  const ring = new Int32Array(t.hold);
  for (let i = 0; i < t.hold; i++) {
    const c = pool.acquire(t.shard);
    if (c === -1) throw new Error(`shard ${t.shard}: no idle core for the ${i + 1}th of ${t.hold} held cores; use a smaller --hold`);
    ring[i] = c;
  }
  const loop = (until: () => boolean): number => {
    let decisions = 0;
    let i = 0;
    do {
      for (let k = 0; k < 1024; k++) {
        pool.release(ring[i] as number);
        const c = pool.acquire(t.shard);
        if (c === -1) throw new Error(`shard ${t.shard}: acquire found no idle core right after a release`);
        ring[i] = c;
        if (++i === t.hold) i = 0;
      }
      decisions += 1024;
    } while (!until());
    return decisions;
  };
  const warmEnd = performance.now() + t.warmupMs;
  loop(() => performance.now() >= warmEnd);
  const steals0 = shared?.steals(t.shard) ?? 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const decisions = loop(() => Atomics.load(control, CONTROL.stop) !== 0);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const steals = shared === undefined ? null : shared.steals(t.shard) - steals0;
  for (const c of ring) pool.release(c);
  for (const c of drained) pool.release(c);
  return { decisions, seconds, steals, processCpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** Tell the parent this thread is set up, then wait for every thread's start signal. */
function signalReadyAndWait(control: Int32Array): void {
  Atomics.add(control, CONTROL.ready, 1);
  parentPort?.postMessage({ ready: true });
  Atomics.wait(control, CONTROL.go, 0);
}

const data = workerData as Partial<ThreadData> | undefined;
if (parentPort !== null && data?.batonPoolExercise === true && data.task !== undefined && data.control !== undefined) {
  const control = new Int32Array(data.control);
  const result: PoolTaskResult = data.task.kind === 'stress' ? stress(data.task, control) : timed(data.task, control);
  parentPort.postMessage({ result });
}
