/**
 * Runs core-pool tasks on real worker_threads, all released at the same
 * instant: the shared pool's stress test and `baton bench sched` use it. The
 * threads run pool-exercise-thread.js (compiled; see compiledSibling), which
 * imports the compiled pool — so a test that runs from the TypeScript sources
 * needs `npm run build` first, which `npm test` does (the `pretest` script).
 */
import { Worker } from 'node:worker_threads';
import { compiledSibling } from '../common/compiled-path.js';

/** Slots of the control Int32Array shared by the threads of one run. */
export const CONTROL = { ready: 0, go: 1, stop: 2, ints: 4 } as const;

export interface StressTask {
  kind: 'stress';
  pool: SharedArrayBuffer;
  /** Int32 per core: 0, or the id of the thread holding it. */
  owners: SharedArrayBuffer;
  shard: number;
  /** Nonzero; written into `owners`. */
  threadId: number;
  ops: number;
  /** Most cores this thread holds at once. */
  hold: number;
  seed: number;
}

export interface StressResult {
  acquired: number;
  released: number;
  /** Acquires that found no idle core. */
  empty: number;
}

export interface TimedTask {
  kind: 'timed';
  impl: 'shared' | 'sequential';
  /** The shared pool; for `sequential`, the dimensions of a `CorePool` the thread builds itself. */
  pool: SharedArrayBuffer | { shards: number; machines: number; coresPerMachine: number };
  shard: number;
  hold: number;
  /** Claim every core of the thread's own shard first and keep them, so that every measured acquire steals. */
  drainOwn: boolean;
  /** Decisions made, unmeasured, after the start signal and before measuring. */
  warmupMs: number;
}

export interface TimedResult {
  decisions: number;
  seconds: number;
  /** Cores this thread's shard took from other shards while measured; null for the sequential pool (it does not count them). */
  steals: number | null;
  /** CPU time of the whole process (every thread) during this thread's measured window: how many cores the run really had. */
  processCpuSeconds: number;
}

export type PoolTask = StressTask | TimedTask;
export type PoolTaskResult = StressResult | TimedResult;

/** What a pool thread receives as workerData. */
export interface ThreadData {
  batonPoolExercise: true;
  task: PoolTask;
  control: SharedArrayBuffer;
}

const THREAD_SCRIPT = (): string => compiledSibling('pool-exercise-thread.js', import.meta.url);

/**
 * Start one thread per task, wait until every one is set up, release them
 * together, and collect their results in task order. With `stopAfterMs`, the
 * stop flag is raised that long after the start (timed tasks run until it).
 * A thread that throws rejects the whole run, and so does a run still going
 * after `timeoutMs` (a thread stuck in the pool); the threads are terminated.
 */
async function runThreads(tasks: readonly PoolTask[], stopAfterMs: number | undefined, timeoutMs: number): Promise<PoolTaskResult[]> {
  const controlBuffer = new SharedArrayBuffer(CONTROL.ints * 4);
  const control = new Int32Array(controlBuffer);
  const script = THREAD_SCRIPT();
  const workers: Worker[] = [];
  let readyCount = 0;
  let onAllReady: () => void = () => undefined;
  const allReady = new Promise<void>((resolve) => (onAllReady = resolve));
  let stopTimer: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const overtime = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => reject(new Error(`pool threads still running after ${timeoutMs} ms (a thread stuck in the pool?)`)), timeoutMs);
  });
  const results = tasks.map((task, i) => {
    const data: ThreadData = { batonPoolExercise: true, task, control: controlBuffer };
    const w = new Worker(script, { workerData: data });
    workers.push(w);
    return new Promise<PoolTaskResult>((resolve, reject) => {
      let result: PoolTaskResult | undefined;
      w.on('message', (m: { ready?: true; result?: PoolTaskResult }) => {
        if (m.ready === true && ++readyCount === tasks.length) onAllReady();
        if (m.result !== undefined) result = m.result;
      });
      w.on('error', (e) => reject(e instanceof Error ? e : new Error(String(e))));
      w.on('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`pool thread ${i} exited with code ${code} before reporting a result`))));
    });
  });
  const all = Promise.all(results);
  try {
    // a thread that fails while setting up rejects `all` before everyone is ready
    await Promise.race([allReady, all, overtime]);
    Atomics.store(control, CONTROL.go, 1);
    Atomics.notify(control, CONTROL.go);
    if (stopAfterMs !== undefined) stopTimer = setTimeout(() => Atomics.store(control, CONTROL.stop, 1), stopAfterMs);
    return await Promise.race([all, overtime]);
  } catch (e) {
    Atomics.store(control, CONTROL.stop, 1);
    await Promise.allSettled(workers.map((w) => w.terminate()));
    throw e;
  } finally {
    clearTimeout(stopTimer);
    clearTimeout(deadline);
  }
}

/** Run stress tasks to completion, all threads started together; fail if they take longer than `timeoutMs`. */
export async function runStressThreads(tasks: readonly StressTask[], timeoutMs = 20_000): Promise<StressResult[]> {
  return (await runThreads(tasks, undefined, timeoutMs)) as StressResult[];
}

/** Run timed tasks: each warms up for its `warmupMs`, then measures until `warmupMs + measureMs` after the common start. */
export async function runTimedThreads(tasks: readonly TimedTask[], measureMs: number): Promise<TimedResult[]> {
  const warmup = Math.max(0, ...tasks.map((t) => t.warmupMs));
  return (await runThreads(tasks, warmup + measureMs, warmup + measureMs + 30_000)) as TimedResult[];
}
