/**
 * The body of one thread that exercises a core pool: the worker_threads entry
 * behind `runStressThreads` and `runTimedThreads` (pool-exercise.ts), used by the shared pool's stress
 * test and by `baton bench sched`. It is a compiled script like the sandbox
 * runners: threads start it from dist/ (see compiledSibling), because Node does
 * not run a TypeScript file given to `new Worker`.
 *
 * Four tasks:
 * - stress: a fixed number of random acquires (acquire(shard), and with
 *   `onShare` acquireOn(machine)) and releases on a shared pool, with an
 *   over-commit detector — after acquiring core c the thread claims
 *   `owners[c]` with compareExchange(0 → its id) and throws if another thread
 *   owned it; it gives the slot back before releasing c. Optionally a solo
 *   phase (StressTask.solo) and a leaving machine (StressTask.leaving).
 * - churn: makes one machine leave (withdraw) and join again (addCores) over
 *   and over while stress threads run (ChurnTask), through the same owner slots.
 * - paced: acquireOn calls that stop after each successful compareExchange
 *   (and, if asked, before each atomic load) on the pool until a driving test
 *   lets them go (PacedTask).
 * - timed: decisions per second. The thread keeps `hold` cores claimed and,
 *   until told to stop, releases its oldest one and acquires another (one
 *   decision = that release + acquire), on the shared pool or on the
 *   sequential `CorePool` (one thread only, a baseline).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CorePool } from '../policies/core-pool.js';
import { CONTROL, PACE, PARKED, type ChurnResult, type ChurnTask, type PacedResult, type PacedTask, type PoolTaskResult, type StressResult, type StressTask, type ThreadData, type TimedResult, type TimedTask } from './pool-exercise.js';
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
  const cpm = pool.coresPerMachine;
  const next = rng(t.seed);
  const held = new Int32Array(t.hold);
  let n = 0;
  const onShare = t.onShare ?? 0;
  const onMachines = t.onMachines ?? Array.from({ length: pool.machines }, (_, m) => m);
  const leaving = t.leaving?.machine ?? -1;
  const gone = t.leaving === undefined ? undefined : new Int32Array(t.leaving.gone);
  const r: StressResult = { acquired: 0, released: 0, empty: 0, onAcquired: 0, onEmpty: 0, parked: 0, soloChecks: 0 };
  const give = (j: number): void => {
    const c = held[j] as number;
    held[j] = held[n - 1] as number;
    n--;
    // a core of a machine that has left is set aside for the churn thread, not released
    const park = gone !== undefined && Math.floor(c / cpm) === leaving && Atomics.load(gone, 0) !== 0;
    const was = Atomics.compareExchange(owners, c, t.threadId, park ? PARKED : 0);
    if (was !== t.threadId) throw new Error(`thread ${t.threadId}: owner slot of core ${c}, which it holds, reads ${was}`);
    if (park) r.parked++;
    else pool.release(c);
    r.released++;
  };
  const take = (c: number, machine: number): void => {
    if (machine !== -1 && Math.floor(c / cpm) !== machine) throw new Error(`thread ${t.threadId}: acquireOn(${machine}) answered core ${c}, of machine ${Math.floor(c / cpm)}`);
    const was = Atomics.compareExchange(owners, c, 0, t.threadId);
    if (was !== 0) throw new Error(`over-commit: thread ${t.threadId} (shard ${t.shard}) acquired core ${c}${machine === -1 ? '' : ` with acquireOn(${machine})`}, which ${was === PARKED ? 'is parked' : `thread ${was} holds`}`);
    held[n++] = c;
    r.acquired++;
    if (machine !== -1) r.onAcquired++;
  };
  for (let op = 0; op < t.ops; op++) {
    if (n === t.hold || (n > 0 && (next() & 1) === 0)) {
      give(next() % n);
      continue;
    }
    const machine = onShare > 0 && (next() & 255) < onShare ? (onMachines[next() % onMachines.length] as number) : -1;
    const c = machine === -1 ? pool.acquire(t.shard) : pool.acquireOn(machine);
    if (c === -1) {
      if (machine === -1) r.empty++;
      else r.onEmpty++;
      continue;
    }
    take(c, machine);
  }
  if (t.solo !== undefined) {
    const { threads, ops } = t.solo;
    // Everyone finishes the concurrent ops first; the last to finish opens turn 1.
    if (Atomics.add(control, CONTROL.finished, 1) === threads - 1) {
      Atomics.store(control, CONTROL.turn, 1);
      Atomics.notify(control, CONTROL.turn);
    }
    waitForTurn(control, t.threadId);
    // Alone: no other thread is mid-operation, so every answer is exact. A core is idle ⇔ its owner slot is 0.
    const idleOf = (from: number, to: number): number => {
      let k = 0;
      for (let c = from; c < to; c++) if (Atomics.load(owners, c) === 0) k++;
      return k;
    };
    const fail = (what: string): never => {
      throw new Error(`solo phase, thread ${t.threadId}: ${what}`);
    };
    for (let op = 0; op < ops; op++) {
      if (n === t.hold || (n > 0 && (next() & 1) === 0)) {
        give(next() % n);
        continue;
      }
      r.soloChecks++;
      if (onShare > 0 && (next() & 255) < onShare) {
        const m = onMachines[next() % onMachines.length] as number;
        const idle = idleOf(m * cpm, (m + 1) * cpm);
        if (pool.idleOnMachine(m) !== idle) fail(`idleOnMachine(${m}) is ${pool.idleOnMachine(m)}, but ${idle} of its cores are idle`);
        const c = pool.acquireOn(m);
        if (c === -1 && idle > 0) fail(`acquireOn(${m}) answered -1 while ${idle} of its cores were idle`);
        if (c !== -1 && idle === 0) fail(`acquireOn(${m}) answered core ${c} while none of its cores was idle`);
        if (c !== -1) take(c, m);
      } else {
        const idle = idleOf(0, pool.totalCores);
        if (pool.idleTotal() !== idle) fail(`idleTotal() is ${pool.idleTotal()}, but ${idle} cores are idle`);
        const c = pool.acquire(t.shard);
        if ((c === -1) !== (idle === 0)) fail(`acquire(${t.shard}) answered ${c} while ${idle} cores were idle`);
        if (c !== -1) take(c, -1);
      }
    }
    Atomics.store(control, CONTROL.turn, t.threadId + 1);
    Atomics.notify(control, CONTROL.turn);
    waitForTurn(control, threads + 1);
  }
  while (n > 0) give(n - 1);
  return r;
}

/** Wait until the solo turn is `turn`. */
function waitForTurn(control: Int32Array, turn: number): void {
  for (let now = Atomics.load(control, CONTROL.turn); now !== turn; now = Atomics.load(control, CONTROL.turn)) Atomics.wait(control, CONTROL.turn, now);
}

function churn(t: ChurnTask, control: Int32Array): ChurnResult {
  const pool = SharedCorePool.attach(t.pool);
  signalReadyAndWait(control);
  const owners = new Int32Array(t.owners);
  const gone = new Int32Array(t.gone);
  const next = rng(t.seed);
  const cpm = pool.coresPerMachine;
  const first = t.machine * cpm;
  const r: ChurnResult = { cycles: 0, withdrawn: 0, collected: 0, added: 0, shortRounds: 0 };
  // Cores of the machine this thread owns; at the start the machine has all its cores (none held).
  let own = 0;
  for (let cycle = 0; cycle < t.cycles; cycle++) {
    // Leave: from now on, threads set aside the machine's cores they give up; take every idle one.
    Atomics.store(gone, 0, 1);
    for (;;) {
      for (const c of pool.withdraw(t.machine)) {
        if (Math.floor(c / cpm) !== t.machine) throw new Error(`churn: withdraw(${t.machine}) returned core ${c}, of machine ${Math.floor(c / cpm)}`);
        const was = Atomics.compareExchange(owners, c, 0, t.threadId);
        if (was !== 0) throw new Error(`over-commit: withdraw(${t.machine}) claimed core ${c}, which ${was === PARKED ? 'is parked' : `thread ${was} holds`}`);
        own++;
        r.withdrawn++;
      }
      for (let c = first; c < first + cpm; c++) {
        if (Atomics.compareExchange(owners, c, PARKED, t.threadId) === PARKED) {
          own++;
          r.collected++;
        }
      }
      if (own === cpm) break;
      // Other threads still hold some (or are releasing them into the pool): look again.
      r.shortRounds++;
    }
    // Every core of the machine is this thread's: none idle, none held elsewhere, so the hint is exact.
    if (pool.idleOnMachine(t.machine) !== 0) throw new Error(`churn: machine ${t.machine} has ${pool.idleOnMachine(t.machine)} idle cores while one thread owns them all`);
    // Join again with some of the cores (all in the last cycle); keep the rest for the next cycle.
    const count = cycle === t.cycles - 1 ? cpm : 1 + (next() % cpm);
    for (let c = first; c < first + count; c++) {
      const was = Atomics.compareExchange(owners, c, t.threadId, 0);
      if (was !== t.threadId) throw new Error(`churn: owner slot of core ${c}, which this thread owns, reads ${was}`);
    }
    own -= count;
    Atomics.store(gone, 0, 0);
    pool.addCores(t.machine, count);
    r.added += count;
    r.cycles++;
  }
  return r;
}

function paced(t: PacedTask, control: Int32Array): PacedResult {
  const pool = SharedCorePool.attach(t.pool);
  const pace = new Int32Array(t.pace);
  signalReadyAndWait(control);
  type Cas = (a: Int32Array, i: number, expected: number, replacement: number) => number;
  type Load = (a: Int32Array, i: number) => number;
  const atomics = Atomics as unknown as { compareExchange: Cas; load: Load };
  const realCas = atomics.compareExchange;
  const realLoad = atomics.load;
  let pauses = 0;
  const pause = (): void => {
    Atomics.store(pace, PACE.paused, ++pauses);
    Atomics.notify(pace, PACE.paused);
    for (let go = realLoad(pace, PACE.resumed); go < pauses; go = realLoad(pace, PACE.resumed)) Atomics.wait(pace, PACE.resumed, go);
  };
  atomics.compareExchange = (a, i, expected, replacement) => {
    const was = realCas(a, i, expected, replacement);
    if (a.buffer === t.pool && was === expected) pause();
    return was;
  };
  if (t.pauseBeforeLoads === true) {
    atomics.load = (a, i) => {
      if (a.buffer === t.pool) pause();
      return realLoad(a, i);
    };
  }
  try {
    return { answers: t.machines.map((m) => pool.acquireOn(m)) };
  } finally {
    atomics.compareExchange = realCas;
    atomics.load = realLoad;
  }
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
  const task = data.task;
  const result: PoolTaskResult = task.kind === 'stress' ? stress(task, control) : task.kind === 'timed' ? timed(task, control) : task.kind === 'churn' ? churn(task, control) : paced(task, control);
  parentPort.postMessage({ result });
}
