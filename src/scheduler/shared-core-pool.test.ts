import { describe, expect, it, vi } from 'vitest';
import { CorePool } from '../policies/core-pool.js';
import { PACE, runChurnThreads, runPacedThread, runStressThreads, type ChurnResult, type ChurnTask, type StressResult, type StressTask } from './pool-exercise.js';
import { MAX_CORES, SharedCorePool } from './shared-core-pool.js';

/**
 * A second thread that stops at each step the test names (pool-exercise's
 * paced task): `reached(k)` waits until it stopped at pause k, `resume(k)`
 * lets it past pause k. Resolves once it reached its first pause.
 */
async function paced(task: Omit<Extract<Parameters<typeof runPacedThread>[0], { kind: 'paced' }>, 'pace'>): Promise<{ done: ReturnType<typeof runPacedThread>; reached: (k: number) => void; resume: (k: number) => void }> {
  const paceBuffer = new SharedArrayBuffer(PACE.ints * 4);
  const pace = new Int32Array(paceBuffer);
  const done = runPacedThread({ ...task, pace: paceBuffer });
  const realLoad = Atomics.load.bind(Atomics) as (a: Int32Array, i: number) => number;
  const reached = (k: number): void => {
    for (let p = realLoad(pace, PACE.paused); p < k; p = realLoad(pace, PACE.paused)) {
      if (Atomics.wait(pace, PACE.paused, p, 10_000) === 'timed-out') throw new Error(`the paced thread did not reach pause ${k}`);
    }
  };
  const resume = (k: number): void => {
    Atomics.store(pace, PACE.resumed, k);
    Atomics.notify(pace, PACE.resumed);
  };
  for (let waited = 0; realLoad(pace, PACE.paused) < 1; waited++) {
    if (waited > 10_000) throw new Error('the paced thread did not start');
    await new Promise((r) => setTimeout(r, 1));
  }
  return { done, reached, resume };
}

/** Every core's list, asserting each core is in exactly one list and that it is its home shard's. */
function listsOf(pool: SharedCorePool): number[][] {
  return Array.from({ length: pool.shards }, (_, s) => pool.idleCores(s));
}

function expectAllIdleOnceAtHome(pool: SharedCorePool): void {
  const lists = listsOf(pool);
  const seen = new Map<number, number>();
  lists.forEach((cores, s) => {
    for (const c of cores) {
      expect(pool.homeOf(c), `core ${c} is in shard ${s}'s list`).toBe(s);
      seen.set(c, (seen.get(c) ?? 0) + 1);
    }
    expect(pool.idleOn(s)).toBe(cores.length);
  });
  expect([...seen.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: pool.totalCores }, (_, i) => i));
  expect([...seen.values()].every((n) => n === 1)).toBe(true);
  expect(pool.idleTotal()).toBe(pool.totalCores);
  expect(pool.audit()).toEqual([]);
}

describe('SharedCorePool, one thread', () => {
  it('rejects bad dimensions with RangeErrors that name the dimension', () => {
    expect(() => SharedCorePool.create(0, 2, 2)).toThrow(new RangeError('shared core pool: shards must be an integer from 1 to 1024, got 0'));
    expect(() => SharedCorePool.create(2, 1.5, 2)).toThrow(/machines must be an integer from 1 to \d+, got 1\.5/);
    expect(() => SharedCorePool.create(2, 2, 0)).toThrow(/coresPerMachine must be an integer from 1 to \d+, got 0/);
    expect(() => SharedCorePool.create(2, 2, Number.NaN)).toThrow(/coresPerMachine .* got NaN/);
    expect(() => SharedCorePool.create(2000, 2, 2)).toThrow(/shards must be an integer from 1 to 1024, got 2000/);
    expect(() => SharedCorePool.create(4, 100_000, 32)).toThrow(new RangeError(`shared core pool: 100000 machines × 32 cores = 3200000 cores, more than the ${MAX_CORES} one pool can track`));
    // the largest pool allowed is built
    expect(SharedCorePool.create(4, MAX_CORES / 32, 32).idleTotal()).toBe(MAX_CORES);
  });

  it('attaches only to a SharedArrayBuffer holding a pool of this layout', () => {
    const pool = SharedCorePool.create(3, 5, 4);
    expect(() => SharedCorePool.attach(new ArrayBuffer(64) as unknown as SharedArrayBuffer)).toThrow(new TypeError('SharedCorePool.attach: expected a SharedArrayBuffer, got [object ArrayBuffer]'));
    expect(() => SharedCorePool.attach(new SharedArrayBuffer(8))).toThrow(/8 bytes is too small to hold a shared core pool/);
    expect(() => SharedCorePool.attach(new SharedArrayBuffer(4096))).toThrow(/not a shared core pool \(header word 0x0, expected 0x53435031\)/);
    const copy = (edit: (a: Int32Array) => void, bytes = pool.buffer.byteLength): SharedArrayBuffer => {
      const b = new SharedArrayBuffer(bytes);
      new Int32Array(b).set(new Int32Array(pool.buffer).subarray(0, bytes / 4));
      edit(new Int32Array(b));
      return b;
    };
    expect(() => SharedCorePool.attach(copy((a) => (a[1] = 99)))).toThrow(/layout version 99, this build reads version 1/);
    expect(() => SharedCorePool.attach(copy((a) => (a[2] = 0)))).toThrow(/shards must be an integer from 1 to 1024, got 0/);
    expect(() => SharedCorePool.attach(copy(() => undefined, pool.buffer.byteLength - 64))).toThrow(new RangeError(`SharedCorePool.attach: the buffer is ${pool.buffer.byteLength - 64} bytes; a pool of 3 shards × 5 machines × 4 cores takes ${pool.buffer.byteLength}`));
    expect(SharedCorePool.byteLength(3, 5, 4)).toBe(pool.buffer.byteLength);
    const view = SharedCorePool.attach(pool.buffer);
    expect([view.shards, view.machines, view.coresPerMachine, view.totalCores]).toEqual([3, 5, 4, 20]);
  });

  it('pops own idle cores, steals from the fullest shard when empty, returns cores home (as CorePool)', () => {
    const pool = SharedCorePool.create(2, 2, 2); // machine 0 → shard 0, machine 1 → shard 1
    expectAllIdleOnceAtHome(pool);
    expect(pool.idleOn(0)).toBe(2);
    const a = pool.acquire(0);
    const b = pool.acquire(0);
    expect([a, b].sort()).toEqual([0, 1]);
    expect(pool.steals(0)).toBe(0);
    const stolen = pool.acquire(0);
    expect([2, 3]).toContain(stolen);
    expect(pool.steals(0)).toBe(1);
    expect(pool.idleOn(1)).toBe(1);
    pool.acquire(1);
    expect(pool.idleTotal()).toBe(0);
    expect(pool.acquire(0)).toBe(-1);
    expect(pool.acquire(1)).toBe(-1);
    pool.release(stolen);
    expect(pool.idleOn(1)).toBe(1); // home shard of machine 1
    expect(pool.idleOn(0)).toBe(0);
    pool.release(a);
    expect(pool.acquire(0)).toBe(a);
    expect(() => pool.release(-1)).toThrow(new RangeError('core -1 is not in 0..3'));
    expect(() => pool.release(4)).toThrow(/core 4 is not in 0..3/);
    expect(() => pool.release(stolen)).toThrow(new Error(`shared core pool: core ${stolen} released while idle (released twice, or never acquired)`));
    expect(() => pool.acquire(2)).toThrow(new RangeError('shard 2 is not in 0..1'));
    expect(() => pool.acquire(0.5)).toThrow(/shard 0.5 is not in 0..1/);
    expect(() => pool.idleOn(-1)).toThrow(/shard -1 is not in 0..1/);
    expect(pool.audit()).toEqual([]);
  });

  it('steals from the shard with the most idle cores; a shard without machines always steals', () => {
    const pool = SharedCorePool.create(3, 2, 3); // shard 2 has no machine
    expect([pool.idleOn(0), pool.idleOn(1), pool.idleOn(2)]).toEqual([3, 3, 0]);
    pool.acquire(0);
    const c = pool.acquire(2); // shard 1 has 3, shard 0 has 2
    expect(pool.homeOf(c)).toBe(1);
    const d = pool.acquire(2); // 2 and 2: the first of the fullest
    expect(pool.homeOf(d)).toBe(0);
    expect(pool.steals(2)).toBe(2);
    pool.release(c);
    pool.release(d);
    expect([pool.idleOn(0), pool.idleOn(1), pool.idleOn(2)]).toEqual([2, 3, 0]);
  });

  it('decides like CorePool: the same shards, counts and empty answers over random operations', () => {
    for (const [shards, machines, cpm] of [
      [1, 1, 1],
      [2, 3, 5],
      [4, 3, 4],
      [3, 100, 40], // 1360 cores in shard 0: 43 bitmap words, 2 summary words
      [8, 8, 64],
    ] as const) {
      const shared = SharedCorePool.create(shards, machines, cpm);
      const seq = new CorePool(shards, machines, cpm);
      const held: [number, number][] = []; // [shared core, sequential core], taken from the same shard
      let x = 12345 + shards * 7 + machines;
      const next = (n: number): number => {
        x = (x * 1103515245 + 12345) >>> 0;
        return (x >>> 8) % n;
      };
      for (let op = 0; op < 20_000; op++) {
        // drift between mostly acquiring and mostly releasing, so the pool fills, empties and steals
        const acquiring = held.length === 0 || next(100) < (Math.floor(op / 2000) % 2 === 0 ? 70 : 30);
        if (acquiring) {
          const s = next(shards);
          const a = shared.acquire(s);
          const b = seq.acquire(s);
          // (expect only on a mismatch: 100,000 expect calls take seconds)
          if ((a === -1) !== (b === -1) || (b !== -1 && shared.homeOf(a) !== seq.homeOf(b))) expect([op, a, a === -1 ? -1 : shared.homeOf(a)]).toEqual([op, b, b === -1 ? -1 : seq.homeOf(b)]);
          if (b !== -1) held.push([a, b]);
        } else {
          const j = next(held.length);
          const [a, b] = held[j] as [number, number];
          held[j] = held[held.length - 1] as [number, number];
          held.pop();
          shared.release(a);
          seq.release(b);
        }
        for (let s = 0; s < shards; s++) if (shared.idleOn(s) !== seq.idleOn(s)) expect([op, s, shared.idleOn(s)]).toEqual([op, s, seq.idleOn(s)]);
      }
      expect(new Set(held.map(([a]) => a)).size).toBe(held.length); // never the same core twice
      expect(shared.audit()).toEqual([]);
      for (const [a] of held) shared.release(a);
      expectAllIdleOnceAtHome(shared);
    }
  });

  it('goes round the machines of a shard: consecutive claims land on different machines while others have idle cores', () => {
    // as the control plane lays it out: 64 cores per machine slot, 8 of them real
    const pool = SharedCorePool.createEmpty(1, 6, 64);
    for (let m = 0; m < 6; m++) pool.addCores(m, 8);
    const machineOf = (core: number): number => Math.floor(core / 64);
    const first = Array.from({ length: 6 }, () => machineOf(pool.acquire(0)));
    expect(new Set(first).size).toBe(6);
    // and round again, still one core of each before a second of any
    const second = Array.from({ length: 6 }, () => machineOf(pool.acquire(0)));
    expect(second.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(pool.audit()).toEqual([]);
  });

  it('a view attached to the buffer sees and changes the same pool', () => {
    const pool = SharedCorePool.create(2, 4, 8);
    const view = SharedCorePool.attach(pool.buffer);
    const got = Array.from({ length: 16 }, () => view.acquire(1));
    expect(pool.idleOn(1)).toBe(0);
    expect(pool.acquire(1)).not.toBe(-1); // steals from shard 0
    expect(view.steals(1)).toBe(1);
    for (const c of got) pool.release(c);
    expect(view.idleOn(1)).toBe(16);
  });

  it('does not answer -1 when the idle core moves from a list it has not read to one it has', () => {
    // One thread, a forced interleaving: while acquire(0) reads the shards' state words in turn, another
    // scheduler (a second view) frees core 0 into shard 0, already read, and takes core 2 from shard 2, not
    // yet read. One core was idle at every instant, so the answer must be a core (core 0), not -1.
    const pool = SharedCorePool.create(3, 3, 1); // core s in shard s
    const other = SharedCorePool.attach(pool.buffer);
    expect([other.acquire(0), other.acquire(1)]).toEqual([0, 1]);
    const stride = (pool.buffer.byteLength / 4 - 16) / 3; // header 16 ints, then one block per shard, state word first
    const shard1State = 16 + stride;
    const realLoad = Atomics.load.bind(Atomics) as (a: Int32Array, i: number) => number;
    let moved = false;
    let taken = -1;
    const spy = vi.spyOn(Atomics, 'load').mockImplementation(((a: Int32Array, i: number): number => {
      if (!moved && a.buffer === pool.buffer && i === shard1State) {
        moved = true;
        other.release(0);
        taken = other.acquire(2);
      }
      return realLoad(a, i);
    }) as typeof Atomics.load);
    try {
      expect(pool.acquire(0)).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(taken).toBe(2);
    expect(pool.idleTotal()).toBe(0);
    expect(pool.acquire(1)).toBe(-1);
  });

  it('finds idle cores whose summary marks are missing, and restores the marks', () => {
    // White box: clear shard 0's summary words (header 16 ints, then shard 0's 16-int head, then its summary).
    const pool = SharedCorePool.create(1, 40, 32); // 1280 cores: 40 words, 2 summary words
    const raw = new Int32Array(pool.buffer);
    raw[32] = 0;
    raw[33] = 0;
    expect(pool.audit()).toContain('shard 0: word 0 has idle cores but its summary bit is clear');
    const got = new Set(Array.from({ length: 1280 }, () => pool.acquire(0)));
    expect(got.size).toBe(1280);
    expect(pool.acquire(0)).toBe(-1);
    for (const c of got) pool.release(c);
    expectAllIdleOnceAtHome(pool);
  });
});

describe('SharedCorePool, several threads', () => {
  // The threads run the compiled dist/src/scheduler/pool-exercise-thread.js: `npm test` builds first (pretest);
  // when running vitest directly, run `npm run build` before.
  const stress = async (shards: number, machines: number, cpm: number, threads: number, hold: number, ops: number) => {
    const pool = SharedCorePool.create(shards, machines, cpm);
    const owners = new SharedArrayBuffer(pool.totalCores * 4);
    const tasks: StressTask[] = Array.from({ length: threads }, (_, t) => ({ kind: 'stress', pool: pool.buffer, owners, shard: t % shards, threadId: t + 1, ops, hold, seed: 0x9e3779b9 * (t + 1) }));
    const results = await runStressThreads(tasks);
    return { pool, owners: new Int32Array(owners), results };
  };

  it('never hands a core to two threads at once and loses none, under contention and with the cluster full', async () => {
    // 12 cores; 4 threads that each hold up to 4 want 16, so acquires also find the cluster full.
    // Shard 3 has no machine: every core its thread gets is stolen.
    const { pool, owners, results } = await stress(4, 3, 4, 4, 4, 1_000_000);
    // (an over-commit throws in the thread that saw it, failing runStressThreads)
    for (const r of results) expect(r.acquired).toBe(r.released);
    expect(results.reduce((n, r) => n + r.acquired, 0)).toBeGreaterThan(200_000);
    expect(results.some((r) => r.empty > 0)).toBe(true);
    expect(owners.every((o) => o === 0)).toBe(true);
    expect(pool.steals(3)).toBe((results[3] as { acquired: number }).acquired);
    expect(pool.steals(3)).toBeGreaterThan(0);
    expectAllIdleOnceAtHome(pool);
  });

  it('never answers -1 while a core is idle', async () => {
    // 8 cores (shards 0 and 1; shards 2 and 3 have no machine), 4 threads holding at most 2 each. A thread
    // acquires only while it holds at most 1, and the other three hold at most 6: at every instant of its
    // call at least one core is idle, so -1 would be wrong.
    const { pool, results } = await stress(4, 2, 4, 4, 2, 500_000);
    for (const r of results) expect(r.empty).toBe(0);
    expect(pool.steals(2)).toBe((results[2] as { acquired: number }).acquired);
    expect(pool.steals(3)).toBe((results[3] as { acquired: number }).acquired);
    expect(pool.steals(3)).toBeGreaterThan(0);
    expectAllIdleOnceAtHome(pool);
  });
});

describe('SharedCorePool, machines that join and leave (one thread)', () => {
  /** Cores of `machine` that are idle, ascending. */
  const idleOfMachine = (pool: SharedCorePool, machine: number): number[] => pool.idleCores(pool.homeOf(machine * pool.coresPerMachine)).filter((c) => Math.floor(c / pool.coresPerMachine) === machine);

  it('createEmpty: the same layout with no core idle', () => {
    const pool = SharedCorePool.createEmpty(3, 5, 40);
    expect(pool.buffer.byteLength).toBe(SharedCorePool.byteLength(3, 5, 40));
    expect([pool.shards, pool.machines, pool.coresPerMachine, pool.totalCores]).toEqual([3, 5, 40, 200]);
    expect(pool.idleTotal()).toBe(0);
    for (let s = 0; s < 3; s++) expect(pool.idleCores(s)).toEqual([]);
    for (let m = 0; m < 5; m++) expect(pool.idleOnMachine(m)).toBe(0);
    expect(pool.acquire(0)).toBe(-1);
    expect(pool.acquireOn(4)).toBe(-1);
    expect(pool.withdraw(2)).toEqual([]);
    expect(pool.audit()).toEqual([]);
    const view = SharedCorePool.attach(pool.buffer);
    expect([view.shards, view.machines, view.coresPerMachine]).toEqual([3, 5, 40]);
    expect(() => SharedCorePool.createEmpty(0, 1, 1)).toThrow(/shards must be an integer from 1 to 1024, got 0/);
  });

  it('addCores: the first count cores of the machine, in its home shard; throws on a bad count or an idle core, before adding any', () => {
    // 40 cores per machine (not a multiple of 32, more than 32); 3 shards: machine 3 is shard 0's second
    // machine, bits 40..79 of shard 0 (words 1 and 2, word 1 shared with machine 0).
    const pool = SharedCorePool.createEmpty(3, 5, 40);
    pool.addCores(3, 40);
    expect(pool.idleOn(0)).toBe(40);
    expect(pool.idleCores(0)).toEqual(Array.from({ length: 40 }, (_, i) => 120 + i));
    expect([0, 1, 2, 3, 4].map((m) => pool.idleOnMachine(m))).toEqual([0, 0, 0, 40, 0]);
    pool.addCores(0, 33); // machine 0: bits 0..32, words 0 and 1
    expect(pool.idleOn(0)).toBe(73);
    expect(idleOfMachine(pool, 0)).toEqual(Array.from({ length: 33 }, (_, i) => i));
    pool.addCores(4, 7); // shard 1's second machine
    expect(pool.idleCores(1)).toEqual([160, 161, 162, 163, 164, 165, 166]);
    pool.addCores(2, 0); // nothing
    expect(pool.idleOn(2)).toBe(0);
    expect(pool.audit()).toEqual([]);
    // a second add throws, and adds nothing (core 40·4 + 7 would be new, core 160 is idle)
    expect(() => pool.addCores(4, 8)).toThrow(new RangeError('shared core pool: cannot add core 160 of machine 4: it is idle already'));
    expect(() => pool.addCores(3, 1)).toThrow(RangeError);
    expect(() => pool.addCores(0, 40)).toThrow(/cannot add core 0 of machine 0: it is idle already/);
    expect(pool.idleOnMachine(4)).toBe(7);
    expect(pool.idleOnMachine(0)).toBe(33);
    expect(() => pool.addCores(1, 41)).toThrow(new RangeError('shared core pool: machine 1 cannot have 41 cores: the count must be an integer from 0 to coresPerMachine (40)'));
    expect(() => pool.addCores(1, -1)).toThrow(RangeError);
    expect(() => pool.addCores(1, 2.5)).toThrow(RangeError);
    expect(() => pool.addCores(5, 1)).toThrow(new RangeError('machine 5 is not in 0..4'));
    expect(() => pool.addCores(-1, 1)).toThrow(/machine -1 is not in 0..4/);
    expect(pool.idleTotal()).toBe(80);
    expect(pool.audit()).toEqual([]);
    // cores added are claimed and released like any other
    const got = Array.from({ length: 80 }, () => pool.acquire(2)); // shard 2 has none: all stolen
    expect(new Set(got).size).toBe(80);
    expect(pool.acquire(2)).toBe(-1);
    expect(pool.steals(2)).toBe(80);
    for (const c of got) pool.release(c);
    expect(pool.idleTotal()).toBe(80);
    // a core added on a full pool (create) is idle already
    expect(() => SharedCorePool.create(2, 2, 3).addCores(1, 1)).toThrow(/cannot add core 3 of machine 1: it is idle already/);
  });

  it('acquireOn: only cores of the machine, any width, machines in different shards; -1 when none is idle even while its shard has others', () => {
    for (const [shards, machines, cpm] of [
      [3, 5, 40],
      [2, 5, 70], // three words per machine; machine 2 (shard 0) starts at bit 70, mid-word
      [4, 9, 7],
      [2, 4, 32],
      [1, 3, 1],
    ] as const) {
      const pool = SharedCorePool.create(shards, machines, cpm);
      for (let m = machines - 1; m >= 0; m--) {
        const s = m % shards;
        const before = pool.idleOn(s);
        const got: number[] = [];
        for (let i = 0; i < cpm; i++) {
          const c = pool.acquireOn(m);
          expect(Math.floor(c / cpm), `shards ${shards}, machine ${m}: core ${c}`).toBe(m);
          got.push(c);
        }
        expect(new Set(got).size).toBe(cpm);
        expect(pool.idleOn(s)).toBe(before - cpm);
        expect(pool.idleOnMachine(m)).toBe(0);
        // none of this machine idle, others of its shard idle (except for the last machine drained there)
        const others = pool.idleOn(s);
        expect(pool.acquireOn(m)).toBe(-1);
        expect(pool.idleOn(s)).toBe(others); // the unit went back
        expect(pool.audit()).toEqual([]);
        // a core released comes back to exactly this machine
        pool.release(got[3 % cpm] as number);
        expect(pool.idleOnMachine(m)).toBe(1);
        expect(pool.acquireOn(m)).toBe(got[3 % cpm]);
      }
      expect(pool.idleTotal()).toBe(0);
      expect(pool.acquireOn(0)).toBe(-1);
      expect(pool.acquire(0)).toBe(-1);
      expect(pool.audit()).toEqual([]);
    }
    const pool = SharedCorePool.create(2, 3, 4);
    expect(() => pool.acquireOn(3)).toThrow(new RangeError('machine 3 is not in 0..2'));
    expect(() => pool.acquireOn(0.5)).toThrow(RangeError);
    expect(() => pool.idleOnMachine(-1)).toThrow(RangeError);
    expect(() => pool.withdraw(3)).toThrow(RangeError);
  });

  it('acquireOn answers -1 for a machine with no idle core while its shard has many, and the count is unchanged', () => {
    // 2 shards, 40 cores per machine: shard 0 holds machines 0, 2, 4 (bits 0..119).
    const pool = SharedCorePool.createEmpty(2, 5, 40);
    pool.addCores(0, 40);
    pool.addCores(4, 13);
    expect(pool.acquireOn(2)).toBe(-1);
    expect(pool.idleOn(0)).toBe(53);
    expect(pool.acquireOn(1)).toBe(-1); // shard 1: count zero
    const c = pool.acquireOn(4);
    expect(c).toBeGreaterThanOrEqual(160);
    expect(c).toBeLessThan(173);
    pool.addCores(2, 1);
    expect(pool.acquireOn(2)).toBe(80);
    expect(pool.acquireOn(2)).toBe(-1);
    expect(pool.idleOn(0)).toBe(52);
    expect(pool.audit()).toEqual([]);
  });

  it('withdraw claims every idle core of the machine and no held one; the pool does not know the machine left', () => {
    const pool = SharedCorePool.create(3, 4, 40); // machine 3: shard 0, bits 40..79
    const held = [pool.acquireOn(3), pool.acquireOn(3), pool.acquireOn(3)];
    const other = pool.acquire(0); // some core of shard 0
    const heldOn3 = held.concat(Math.floor(other / 40) === 3 ? [other] : []);
    const idleBefore = pool.idleOn(0);
    const gone = pool.withdraw(3);
    expect(gone.length).toBe(40 - heldOn3.length);
    expect([...gone, ...heldOn3].sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => 120 + i));
    expect(pool.idleOnMachine(3)).toBe(0);
    expect(pool.idleOn(0)).toBe(idleBefore - gone.length);
    expect(pool.withdraw(3)).toEqual([]);
    expect(pool.audit()).toEqual([]);
    // a holder's later release makes the core idle again (the caller decides whether to make it)
    pool.release(held[0] as number);
    expect(pool.idleOnMachine(3)).toBe(1);
    // addCores for the machine now finds that core idle: throws, adds nothing
    expect(() => pool.addCores(3, 40)).toThrow(new RangeError(`shared core pool: cannot add core ${held[0]} of machine 3: it is idle already`));
    expect(pool.withdraw(3)).toEqual([held[0]]);
    // the caller collects the machine's other cores as their holders give them up (here: release, then withdraw)
    for (const c of heldOn3.slice(1)) pool.release(c);
    expect(pool.withdraw(3).sort((p, q) => p - q)).toEqual(heldOn3.slice(1).sort((p, q) => p - q));
    // once none of the machine's cores is idle or held, it can join again, here with fewer cores
    pool.addCores(3, 5);
    expect(idleOfMachine(pool, 3)).toEqual([120, 121, 122, 123, 124]);
    expect(pool.audit()).toEqual([]);
  });

  it('matches a plain model over random acquire, acquireOn, release, withdraw and addCores', () => {
    for (const [shards, machines, cpm] of [
      [3, 5, 40],
      [2, 3, 70],
      [4, 9, 7],
      [2, 4, 32],
      [1, 1, 1],
    ] as const) {
      const pool = SharedCorePool.createEmpty(shards, machines, cpm);
      const idle = new Set<number>(); // the model
      const held = new Set<number>();
      /** Cores of each machine that are present (joined): the first `size[m]`. */
      const size = new Array<number>(machines).fill(0);
      let x = 777 + shards * 31 + cpm;
      const next = (n: number): number => {
        x = (x * 1103515245 + 12345) >>> 0;
        return (x >>> 8) % n;
      };
      const idleIn = (s: number): number => [...idle].filter((c) => pool.homeOf(c) === s).length;
      const onMachine = (m: number): number => [...idle].filter((c) => Math.floor(c / cpm) === m).length;
      const mismatch = (op: number, what: string, got: unknown, want: unknown): void => {
        if (got !== want) expect([op, what, got]).toEqual([op, what, want]);
      };
      for (let op = 0; op < 6000; op++) {
        const kind = next(100);
        const m = next(machines);
        if (kind < 5) {
          // join: only a machine none of whose cores is idle or held
          const busy = [...idle, ...held].some((c) => Math.floor(c / cpm) === m);
          const k = 1 + next(cpm);
          if (busy) continue;
          pool.addCores(m, k);
          for (let i = 0; i < k; i++) idle.add(m * cpm + i);
          size[m] = k;
        } else if (kind < 8) {
          const got = pool.withdraw(m).sort((p, q) => p - q);
          const want = [...idle].filter((c) => Math.floor(c / cpm) === m).sort((p, q) => p - q);
          if (got.join() !== want.join()) expect([op, 'withdraw', got]).toEqual([op, 'withdraw', want]);
          for (const c of got) idle.delete(c); // the withdrawn cores are dropped: the machine left
        } else if (kind < 40) {
          const c = pool.acquireOn(m);
          mismatch(op, `acquireOn(${m}) found a core`, c !== -1, onMachine(m) > 0);
          if (c !== -1) {
            mismatch(op, `acquireOn(${m}) machine`, Math.floor(c / cpm), m);
            mismatch(op, `core ${c} idle`, idle.delete(c), true);
            held.add(c);
          }
        } else if (kind < 70) {
          const s = next(shards);
          const c = pool.acquire(s);
          // own list first, else the fullest other list
          let want = idleIn(s) > 0 ? s : -1;
          for (let o = 0, most = 0; want !== s && o < shards; o++) {
            if (o !== s && idleIn(o) > most) {
              most = idleIn(o);
              want = o;
            }
          }
          mismatch(op, `acquire(${s}) shard`, c === -1 ? -1 : pool.homeOf(c), want);
          if (c !== -1) {
            mismatch(op, `core ${c} idle`, idle.delete(c), true);
            held.add(c);
          }
        } else if (held.size > 0) {
          const c = [...held][next(held.size)] as number;
          held.delete(c);
          pool.release(c);
          idle.add(c);
        }
        if (op % 50 === 0) {
          for (let s = 0; s < shards; s++) mismatch(op, `idleOn(${s})`, pool.idleOn(s), idleIn(s));
          for (let mm = 0; mm < machines; mm++) mismatch(op, `idleOnMachine(${mm})`, pool.idleOnMachine(mm), onMachine(mm));
        }
      }
      expect(pool.audit()).toEqual([]);
      expect(size.some((k) => k > 0)).toBe(true);
      for (let s = 0; s < shards; s++) expect(pool.idleCores(s)).toEqual([...idle].filter((c) => pool.homeOf(c) === s).sort((p, q) => p - q));
    }
  });
});

describe('SharedCorePool, machines that join and leave (several threads)', () => {
  // As above, the threads run the compiled dist/src/scheduler/pool-exercise-thread.js: `npm run build` first
  // when running vitest directly.
  const stressTasks = (pool: SharedCorePool, owners: SharedArrayBuffer, o: { threads: number; shard: (t: number) => number; hold: number; ops: number; onShare: number; onMachines?: number[]; solo?: number }): StressTask[] =>
    Array.from({ length: o.threads }, (_, t) => ({
      kind: 'stress',
      pool: pool.buffer,
      owners,
      shard: o.shard(t),
      threadId: t + 1,
      ops: o.ops,
      hold: o.hold,
      seed: 0x2545f491 * (t + 3),
      onShare: o.onShare,
      ...(o.onMachines === undefined ? {} : { onMachines: o.onMachines }),
      ...(o.solo === undefined ? {} : { solo: { threads: o.threads, ops: o.solo } }),
    }));

  it('mixes acquire, acquireOn and release: never two holders, nothing lost; then, each thread alone, every answer exact', async () => {
    for (const [shards, machines, cpm, hold] of [
      [3, 4, 3, 4], // 12 cores, 4 threads holding up to 4: machines and the cluster run full
      [2, 3, 40, 40], // machines of 40 cores: two and three words each, machine 2 from bit 40
    ] as const) {
      const pool = SharedCorePool.create(shards, machines, cpm);
      const owners = new SharedArrayBuffer(pool.totalCores * 4);
      // After 600,000 mixed operations each (half the acquires acquireOn), the four threads take turns
      // alone for 20,000 more, in which a core is idle exactly when its owner slot is 0, and check
      // every answer against that: acquireOn(m) is -1 exactly when none of m's cores is idle.
      const tasks = stressTasks(pool, owners, { threads: 4, shard: (t) => t % shards, hold, ops: 600_000, onShare: 128, solo: 20_000 });
      const results = await runStressThreads(tasks);
      for (const r of results) expect(r.acquired).toBe(r.released);
      expect(results.reduce((n, r) => n + r.onAcquired, 0)).toBeGreaterThan(100_000);
      expect(results.reduce((n, r) => n + r.acquired - r.onAcquired, 0)).toBeGreaterThan(100_000);
      expect(results.reduce((n, r) => n + r.soloChecks, 0)).toBeGreaterThan(4 * 5_000);
      if (cpm === 3) {
        expect(results.some((r) => r.onEmpty > 0)).toBe(true); // machines were found fully held
        expect(results.some((r) => r.empty > 0)).toBe(true); // and the cluster full
      }
      expect(new Int32Array(owners).every((o) => o === 0)).toBe(true);
      expectAllIdleOnceAtHome(pool);
    }
  });

  it('acquireOn never answers -1 while its machine provably has an idle core', async () => {
    // Machines of 9 cores (one word) and of 41 (machine 2 of the second pool: bits 41..81 of shard 0, three
    // words). All threads claim in shard 0: acquire(0) and, three times as often, acquireOn of one machine.
    // Four threads holding at most 2 (10) each, a reservation in flight included, can keep at most 8 (40)
    // cores of a machine from being claimable, so every machine has a claimable core at every instant and
    // shard 0's count is never zero: every -1 would be wrong. (With 9 cores, whenever all four threads hold
    // their most, one core is left to claim.)
    for (const [machines, cpm, hold, onMachines] of [
      [2, 9, 2, [0]],
      [4, 41, 10, [2]],
    ] as const) {
      const pool = SharedCorePool.create(2, machines, cpm);
      const owners = new SharedArrayBuffer(pool.totalCores * 4);
      const results = await runStressThreads(stressTasks(pool, owners, { threads: 4, shard: () => 0, hold, ops: 600_000, onShare: 192, onMachines: [...onMachines] }));
      for (const r of results) {
        expect(r.onEmpty).toBe(0);
        expect(r.empty).toBe(0);
        expect(r.acquired).toBe(r.released);
      }
      expect(results.reduce((n, r) => n + r.onAcquired, 0)).toBeGreaterThan(600_000);
      expect(pool.steals(0)).toBe(0);
      expect(new Int32Array(owners).every((o) => o === 0)).toBe(true);
      expectAllIdleOnceAtHome(pool);
    }
  });

  it('a machine that leaves (withdraw) and joins again (addCores) over and over while threads claim and release: never two holders, nothing lost', async () => {
    for (const [shards, machines, cpm, machine, cycles] of [
      [3, 7, 5, 4, 20_000], // machine 4: bits 5..9 of shard 1
      [2, 3, 40, 2, 5_000], // machine 2: bits 40..79 of shard 0, across words 1 and 2
    ] as const) {
      const pool = SharedCorePool.create(shards, machines, cpm);
      const owners = new SharedArrayBuffer(pool.totalCores * 4);
      const gone = new SharedArrayBuffer(4);
      // three claiming threads (acquire and acquireOn of every machine, the leaving one included) and one that
      // makes the machine leave and join: it withdraws it and collects the cores the others set aside while it
      // is gone, until it owns all of them; then it adds back some (all in the last cycle) with addCores.
      const claimers = stressTasks(pool, owners, { threads: 3, shard: (t) => t % shards, hold: 8, ops: 400_000, onShare: 96 }).map((t) => ({ ...t, leaving: { machine, gone } }));
      const churn: ChurnTask = { kind: 'churn', pool: pool.buffer, owners, gone, machine, threadId: 4, cycles, seed: 99 };
      const results = await runChurnThreads([...claimers, churn]);
      const stressed = results.slice(0, 3) as StressResult[];
      const c = results[3] as ChurnResult;
      expect(c.cycles).toBe(cycles);
      // every core the churn thread got (withdrawn or collected) it added back
      expect(c.withdrawn + c.collected).toBe(c.added);
      expect(stressed.reduce((n, r) => n + r.parked, 0)).toBe(c.collected);
      expect(c.collected).toBeGreaterThan(0);
      expect(c.added).toBeGreaterThan(cycles);
      for (const r of stressed) expect(r.acquired).toBe(r.released);
      expect(stressed.reduce((n, r) => n + r.onAcquired, 0)).toBeGreaterThan(50_000);
      expect(new Int32Array(owners).every((o) => o === 0)).toBe(true);
      expectAllIdleOnceAtHome(pool);
    }
  });

  it('an acquireOn that gives its unit back moves the tally, so a concurrent acquire does not answer a wrong -1', async () => {
    // The interleaving of invariant 6, on two threads. Shard 0 has one idle core (core 3, machine 3), shard 1
    // one (core 4, machine 4); shard 2 none, and machines 0 and 1 have no core. A second thread runs
    // acquireOn(0), acquireOn(1), acquireOn(0), acquireOn(1): each reserves its shard's only unit, finds no
    // core of its machine and gives the unit back; each stops after reserving until this thread lets it go.
    // This thread runs acquire(2), which reads the three state words twice, and lets the other go so that
    // each shard reads count 0 twice with a give-back and a new reservation in between. At every instant
    // some count is above zero (the reservations are staggered), so -1 would be wrong; if a give-back only
    // restored the count, both words would read the same twice and acquire(2) would answer -1.
    const pool = SharedCorePool.createEmpty(3, 5, 1); // machine (= core) m in shard m % 3
    pool.addCores(3, 1);
    pool.addCores(4, 1);
    const { done, reached, resume } = await paced({ kind: 'paced', pool: pool.buffer, machines: [0, 1, 0, 1] });
    const realLoad = Atomics.load.bind(Atomics) as (a: Int32Array, i: number) => number;
    // (paced() returns at the first reservation: shard 0's count is 0, its core promised to acquireOn(0))
    const stride = (pool.buffer.byteLength / 4 - 16) / 3; // header 16 ints, then one block per shard, state word first
    const states = [16, 16 + stride, 16 + 2 * stride];
    let reads = 0;
    const spy = vi.spyOn(Atomics, 'load').mockImplementation(((a: Int32Array, i: number): number => {
      if (a.buffer === pool.buffer && states.includes(i)) {
        reads++;
        if (reads === 2) {
          // before shard 1's first read: acquireOn(0) gives shard 0's unit back, acquireOn(1) takes shard 1's
          resume(1);
          reached(2);
        } else if (reads === 4) {
          // before shard 0's second read: acquireOn(1) gives back, acquireOn(0) takes shard 0's unit again
          resume(2);
          reached(3);
        } else if (reads === 5) {
          // before the next read (shard 1's second, or shard 0's in a new first pass): acquireOn(0) gives
          // back, acquireOn(1) takes shard 1's unit again
          resume(3);
          reached(4);
        }
      }
      return realLoad(a, i);
    }) as typeof Atomics.load);
    let got: number;
    try {
      got = pool.acquire(2);
    } finally {
      spy.mockRestore();
      resume(4);
    }
    expect((await done).answers).toEqual([-1, -1, -1, -1]);
    expect(reads).toBeGreaterThanOrEqual(5);
    expect(got).toBe(3); // stolen from shard 0, whose count was 1 again when it looked a second time
    expect([pool.idleOn(0), pool.idleOn(1), pool.idleOn(2)]).toEqual([0, 1, 0]);
    expect(pool.audit()).toEqual([]);
  });
  it('an acquireOn across several words scans again when a release counted a core during its scan', async () => {
    // Machine 0 has 40 cores: bits 0..31 (word 0) and 32..39 (word 1) of the only shard; machine 1 has cores
    // 40..45 idle (word 1). Of machine 0 only core 35 (word 1) is idle; this thread holds the others. A second
    // thread runs acquireOn(0), stopping before each atomic step: it reserves, reads word 0 (nothing of
    // machine 0) and stops before reading word 1. Then this thread runs acquireOn(0) too, and between its
    // read of word 0 and of word 1 releases core 3 (word 0): it gets core 35. At every instant machine 0 had
    // a claimable core (35, then 3) and the count was never zero, so the second thread must not answer -1:
    // its scan saw word 0 before core 3 came and word 1 after core 35 went, but the tally moved meanwhile,
    // so it scans again and gets core 3.
    const pool = SharedCorePool.createEmpty(1, 2, 40);
    pool.addCores(0, 40);
    const held = pool.withdraw(0);
    expect(held).toHaveLength(40);
    pool.release(35);
    pool.addCores(1, 6);
    const { done, reached, resume } = await paced({ kind: 'paced', pool: pool.buffer, machines: [0], pauseBeforeLoads: true });
    const realLoad = Atomics.load.bind(Atomics) as (a: Int32Array, i: number) => number;
    // pause 1: reserved; pause 2: before reading word 0; pause 3: before reading word 1
    resume(1);
    reached(2);
    resume(2);
    reached(3);
    const word1 = 16 + 16 + 16 + 1; // header, the shard's head, its summary line, then the bitmap
    let released = false;
    const spy = vi.spyOn(Atomics, 'load').mockImplementation(((a: Int32Array, i: number): number => {
      if (!released && a.buffer === pool.buffer && i === word1) {
        released = true;
        pool.release(3);
      }
      return realLoad(a, i);
    }) as typeof Atomics.load);
    let mine: number;
    try {
      mine = pool.acquireOn(0);
    } finally {
      spy.mockRestore();
      resume(1_000_000);
    }
    expect(released).toBe(true);
    expect(mine).toBe(35);
    expect((await done).answers).toEqual([3]);
    expect(pool.idleOn(0)).toBe(6);
    expect(pool.idleOnMachine(0)).toBe(0);
    expect(pool.audit()).toEqual([]);
  });
});
