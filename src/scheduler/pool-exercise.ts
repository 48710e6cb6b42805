/**
 * Runs core-pool tasks on real worker_threads, all released at the same
 * instant: the shared pool's stress tests and `baton bench sched` use it. The
 * threads run pool-exercise-thread.js (compiled; see compiledSibling), which
 * imports the compiled pool — so a test that runs from the TypeScript sources
 * needs `npm run build` first, which `npm test` does (the `pretest` script).
 */
import { Worker } from 'node:worker_threads';
import { compiledSibling } from '../common/compiled-path.js';

/**
 * Slots of the control Int32Array shared by the threads of one run. `finished`
 * and `turn` serve the stress task's solo phase: threads that finished their
 * ops, and the threadId whose solo turn it is.
 */
export const CONTROL = { ready: 0, go: 1, stop: 2, finished: 3, turn: 4, ints: 8 } as const;

/** Owner-slot value of a core that a stress thread set aside, not released, because its machine had left (see StressTask.leaving). */
export const PARKED = -1;

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
  /** Of every 256 acquires, how many are `acquireOn` of a machine drawn from `onMachines` rather than `acquire(shard)`; default 0. */
  onShare?: number;
  /** Machines `acquireOn` draws from; default every machine. */
  onMachines?: number[];
  /**
   * After the ops, keep the held cores and wait until all `threads` threads
   * (threadIds 1 … threads) have finished theirs; then each in turn, in
   * threadId order, does `ops` more operations alone and checks every answer
   * exactly against the owner slots (a core is idle ⇔ its slot is 0, so the
   * pool must start with every core idle). Then all release what they hold.
   */
  solo?: { threads: number; ops: number };
  /**
   * A machine that leaves and joins again (a churn task withdraws it): when
   * `gone[0]` is nonzero, a core of it is set aside (owner slot PARKED)
   * instead of released.
   */
  leaving?: { machine: number; gone: SharedArrayBuffer };
}

export interface StressResult {
  acquired: number;
  released: number;
  /** Acquires that found no idle core. */
  empty: number;
  /** Of `acquired`, cores from acquireOn. */
  onAcquired: number;
  /** acquireOn calls that answered -1. */
  onEmpty: number;
  /** Cores set aside because their machine had left. */
  parked: number;
  /** Answers checked in the solo phase. */
  soloChecks: number;
}

/**
 * The thread that makes `machine` leave and join again, `cycles` times: it
 * raises `gone[0]`, withdraws the machine and collects parked cores until it
 * owns every core of the machine (owner slot = threadId), then lowers
 * `gone[0]` and adds back a random number of the machine's cores (all of them
 * in the last cycle), keeping the rest for the next cycle.
 */
export interface ChurnTask {
  kind: 'churn';
  pool: SharedArrayBuffer;
  owners: SharedArrayBuffer;
  gone: SharedArrayBuffer;
  machine: number;
  threadId: number;
  cycles: number;
  seed: number;
}

export interface ChurnResult {
  cycles: number;
  /** Cores withdraw returned. */
  withdrawn: number;
  /** Parked cores collected. */
  collected: number;
  /** Cores given back with addCores. */
  added: number;
  /** withdraw calls that left the thread still short of the machine's cores (other threads held some). */
  shortRounds: number;
}

/** Slots of a paced task's Int32Array: pauses reached (1, 2, …) and pauses the driver let go. */
export const PACE = { paused: 0, resumed: 1, ints: 2 } as const;

/**
 * One `acquireOn` per entry of `machines`, in order, that stops right after
 * each successful compareExchange on the pool's buffer (a reservation, or a
 * claimed bit) and, with `pauseBeforeLoads`, before each Atomics.load from
 * it, until the driver lets it go: a test sets the order in which its steps
 * and another thread's interleave. Pause k (from 1) sets PACE.paused to k
 * and waits until PACE.resumed ≥ k.
 */
export interface PacedTask {
  kind: 'paced';
  pool: SharedArrayBuffer;
  /** PACE.ints Int32s. */
  pace: SharedArrayBuffer;
  machines: number[];
  pauseBeforeLoads?: boolean;
}

export interface PacedResult {
  /** What each acquireOn answered. */
  answers: number[];
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

export type PoolTask = StressTask | TimedTask | ChurnTask | PacedTask;
export type PoolTaskResult = StressResult | TimedResult | ChurnResult | PacedResult;

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

/** Run stress tasks together with churn tasks (results in task order). */
export async function runChurnThreads(tasks: readonly (StressTask | ChurnTask)[], timeoutMs = 20_000): Promise<(StressResult | ChurnResult)[]> {
  return (await runThreads(tasks, undefined, timeoutMs)) as (StressResult | ChurnResult)[];
}

/** Run one paced task; drive it through its `pace` buffer (PACE) while the promise is pending. */
export async function runPacedThread(task: PacedTask, timeoutMs = 20_000): Promise<PacedResult> {
  return (await runThreads([task], undefined, timeoutMs))[0] as PacedResult;
}

/** Run timed tasks: each warms up for its `warmupMs`, then measures until `warmupMs + measureMs` after the common start. */
export async function runTimedThreads(tasks: readonly TimedTask[], measureMs: number): Promise<TimedResult[]> {
  const warmup = Math.max(0, ...tasks.map((t) => t.warmupMs));
  return (await runThreads(tasks, warmup + measureMs, warmup + measureMs + 30_000)) as TimedResult[];
}
