import { describe, expect, it } from 'vitest';
import { EdfQueue, ProcessorSharing, edfDeadline } from './baselines.js';
import { ClassQueue } from './class-queue.js';
import { CorePool } from './core-pool.js';
import { IdleLists } from './idle-list.js';
import { PriorityMachineScheduler, type MachineTask } from './machine-scheduler.js';
import { relieveMemoryPressure, type Resident } from './memory-manager.js';
import { PlacementPipeline, capacityFit, classFit, codeLocality, freeCores, idlePreferred, leastLoaded, type NodeView } from './placement-pipeline.js';
import { powerOfK } from './power-of-k.js';
import { PriceClassSet } from './price-classes.js';
import { createRng } from './rng.js';

const classes = new PriceClassSet();

describe('Rng', () => {
  it('is deterministic per seed and roughly uniform', () => {
    const a = createRng(7);
    const b = createRng(7);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(createRng(8).next()).not.toBe(xs[0]);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    const p = createRng(1);
    expect(Array.from({ length: 100 }, () => p.pareto(2, 10)).every((x) => x >= 10)).toBe(true);
  });
});

describe('PriceClassSet', () => {
  it('ranks by price, resolves call chains to their maximum, and rejects bad definitions', () => {
    expect(classes.names()).toEqual(['batch', 'standard', 'interactive', 'critical']);
    expect(classes.effective(['batch', 'critical', 'standard']).name).toBe('critical');
    expect(classes.effective(['standard']).rank).toBe(1);
    expect(() => classes.get('gold')).toThrow(/unknown price class "gold"; configured classes: batch/);
    expect(() => new PriceClassSet([{ name: 'a', price: 1 }, { name: 'a', price: 2 }])).toThrow(/appears twice/);
    expect(() => new PriceClassSet([{ name: 'a', price: 0 }])).toThrow(/price/);
    expect(() => new PriceClassSet([{ name: 'a', price: 1 }, { name: 'b', price: 1 }])).toThrow(/same price/);
  });
});

describe('ClassQueue', () => {
  it('serves by price × waiting time: high classes first, but a long-waiting low class wins', () => {
    const q = new ClassQueue<string>(classes, 10);
    q.push('batch-old', 'batch', 0);
    q.push('critical-new', 'critical', 90);
    // at t=100: batch 0.5×100 = 50 > critical 2×10 = 20
    expect(q.pop(100)?.item).toBe('batch-old');
    q.push('batch-new', 'batch', 100);
    q.push('critical-2', 'critical', 100);
    // at t=101: critical(90) 2×11 = 22, critical-2 not head; batch-new 0.5×1
    expect(q.pop(101)?.item).toBe('critical-new');
    expect(q.pop(101)?.item).toBe('critical-2');
    expect(q.pop(101)?.item).toBe('batch-new');
    expect(q.pop(101)).toBeUndefined();
  });

  it('breaks ties toward the higher class and keeps FIFO within a class', () => {
    const q = new ClassQueue<number>(classes, 10);
    q.push(1, 'standard', 0);
    q.push(2, 'standard', 0);
    q.push(3, 'critical', 5);
    // at t=10: standard 1×10 = critical 2×5 → the higher class
    expect(q.pop(10)?.item).toBe(3);
    expect(q.pop(10)?.item).toBe(1);
    expect(q.pop(10)?.item).toBe(2);
  });

  it('sheds the lowest class first when full', () => {
    const q = new ClassQueue<string>(classes, 2);
    expect(q.push('b1', 'batch', 0).accepted).toBe(true);
    expect(q.push('s1', 'standard', 0).accepted).toBe(true);
    const r = q.push('c1', 'critical', 1);
    expect(r.accepted).toBe(true);
    expect(r.accepted && r.shed?.item).toBe('b1');
    expect(q.push('b2', 'batch', 2)).toEqual({ accepted: false });
    expect(q.push('s2', 'standard', 2)).toEqual({ accepted: false });
    expect(q.size).toBe(2);
    expect(q.sizeOf('critical')).toBe(1);
  });

  it('removes any entry at once, keeping the order of the rest; a removed entry cannot be removed twice', () => {
    const q = new ClassQueue<string>(classes, 10);
    const entries = ['a', 'b', 'c', 'd'].map((x) => {
      const r = q.push(x, 'standard', 0);
      if (!r.accepted) throw new Error('refused');
      return r.entry;
    });
    expect(q.remove(entries[1] as never)).toBe(true);
    expect(q.remove(entries[1] as never)).toBe(false);
    expect(q.remove(entries[3] as never)).toBe(true);
    expect(q.size).toBe(2);
    expect(q.pop(1)?.item).toBe('a');
    expect(q.pop(1)?.item).toBe('c');
    expect(q.pop(1)).toBeUndefined();
    // a preempted entry goes back to the front of its class
    const e = q.push('x', 'batch', 0);
    q.push('y', 'batch', 0);
    const popped = q.pop(1);
    expect(popped?.item).toBe('x');
    q.pushFront(popped as never);
    expect(e.accepted && q.pop(2)?.item).toBe('x');
    expect(q.drain().map((x) => x.item)).toEqual(['y']);
    expect(q.size).toBe(0);
  });
});

describe('powerOfK', () => {
  it('takes the least loaded of k samples; examines all when k ≥ n; -1 on empty', () => {
    const loads = [5, 1, 9, 0, 3];
    expect(powerOfK(5, 5, (i) => loads[i] as number, createRng(1))).toBe(3);
    expect(powerOfK(0, 3, () => 0, createRng(1))).toBe(-1);
    expect(powerOfK(3, 10, () => 4, createRng(1))).toBe(0); // ties: first examined
    const rng = createRng(3);
    for (let t = 0; t < 50; t++) {
      const pick = powerOfK(5, 2, (i) => loads[i] as number, rng);
      expect(pick).not.toBe(2); // the most loaded never beats another sample
    }
  });
});

describe('IdleLists', () => {
  it('joins the emptiest shard, updates on big changes, leaves when memory runs low, picks the smallest queue', () => {
    const idle = new IdleLists({ shards: 2, joinThresholdMb: 1000, updateDeltaMb: 500, k: 2 });
    const rng = createRng(1);
    expect(idle.pick(0)).toBeUndefined();
    const s0 = idle.report(1, 5000, 3, rng);
    const s1 = idle.report(2, 5000, 1, rng);
    expect(s0).not.toBe(s1); // power-of-2 over 2 shards = the emptier one
    expect(idle.report(3, 500, 0, rng)).toBeUndefined();
    const s3 = idle.report(3, 4000, 0, rng) as number;
    expect(idle.report(3, 4100, 5, rng)).toBe(s3); // already listed: stays
    expect(idle.pick(s3)?.machine).toBe(s3 === s1 ? 2 : 1); // queue 5 loses
    expect(idle.report(1, 10, 0, rng)).toBeUndefined();
    expect(idle.shardOf(1)).toBeUndefined();
  });
});

describe('CorePool', () => {
  it('pops own idle cores, steals from the fullest shard when empty, returns cores home', () => {
    const pool = new CorePool(2, 2, 2); // machine 0 → shard 0, machine 1 → shard 1
    expect(pool.idleOn(0)).toBe(2);
    const a = pool.acquire(0);
    const b = pool.acquire(0);
    expect([a, b].sort()).toEqual([0, 1]);
    const stolen = pool.acquire(0);
    expect([2, 3]).toContain(stolen);
    expect(pool.idleOn(1)).toBe(1);
    pool.acquire(1);
    expect(pool.acquire(0)).toBe(-1);
    pool.release(stolen);
    expect(pool.idleOn(1)).toBe(1); // home shard of machine 1
    pool.release(a);
    expect(pool.acquire(0)).toBe(a);
    expect(() => pool.release(-1)).toThrow(/not in 0..3/);
  });
});

describe('PriorityMachineScheduler', () => {
  const t = (id: number, rank: number): MachineTask => ({ id, rank });

  it('preempts the lowest class, chains preemptions, resumes in class order, FIFO within a class', () => {
    const m = new PriorityMachineScheduler<MachineTask>(2, 4);
    expect(m.submit(t(1, 0))).toEqual([{ kind: 'start', task: t(1, 0), core: 0 }]);
    expect(m.submit(t(2, 1))).toEqual([{ kind: 'start', task: t(2, 1), core: 1 }]);
    // same or lower class never preempts
    expect(m.submit(t(3, 0))).toEqual([]);
    // interactive preempts the batch task
    expect(m.submit(t(4, 2))).toEqual([{ kind: 'preempt', task: t(1, 0), core: 0 }, { kind: 'start', task: t(4, 2), core: 0 }]);
    // critical preempts the standard one (lowest running now)
    expect(m.submit(t(5, 3))).toEqual([{ kind: 'preempt', task: t(2, 1), core: 1 }, { kind: 'start', task: t(5, 3), core: 1 }]);
    expect(m.queuedCount).toBe(3);
    // cores free: standard(2) first, then preempted batch(1) before the later batch(3)
    expect(m.complete(5)).toEqual([{ kind: 'start', task: t(2, 1), core: 1 }]);
    expect(m.complete(4)).toEqual([{ kind: 'start', task: t(1, 0), core: 0 }]);
    expect(m.complete(1)).toEqual([{ kind: 'start', task: t(3, 0), core: 0 }]);
    expect(m.complete(99)).toEqual([]);
  });

  it('re-ranks tasks: a waiting task that rises preempts, a running task that falls yields to a higher waiting one', () => {
    const m = new PriorityMachineScheduler<MachineTask>(1, 4);
    const a = t(1, 1);
    const b = t(2, 0);
    m.submit(a);
    expect(m.submit(b)).toEqual([]);
    expect(m.lowestRunningRank()).toBe(1);
    // b's sandbox gets a critical call: it rises and takes the core
    expect(m.setRank(b, 3)).toEqual([{ kind: 'preempt', task: a, core: 0 }, { kind: 'start', task: b, core: 0 }]);
    // its critical call ends, a batch call remains: the waiting standard task (a) now wins
    expect(m.setRank(b, 0)).toEqual([{ kind: 'preempt', task: b, core: 0 }, { kind: 'start', task: a, core: 0 }]);
    // a running task rising preempts nobody
    expect(m.setRank(a, 2)).toEqual([]);
    expect(m.running()[0]).toBe(a);
    expect(m.setRank(t(9, 0), 2)).toEqual([]); // unknown
    expect(() => m.setRank(a, 4)).toThrow(/outside 0..3/);
    expect(m.complete(1)).toEqual([{ kind: 'start', task: b, core: 0 }]);
    expect(m.lowestRunningRank()).toBe(0);
    m.complete(2);
    expect(m.lowestRunningRank()).toBe(-1);
  });

  it('preempts the latest-started among equally low tasks', () => {
    const m = new PriorityMachineScheduler<MachineTask>(2, 2);
    m.submit(t(1, 0));
    m.submit(t(2, 0));
    expect(m.submit(t(3, 1))[0]).toEqual({ kind: 'preempt', task: t(2, 0), core: 1 });
    expect(m.removeWaiting(2)).toBe(true);
    expect(m.queuedCount).toBe(0);
  });
});

describe('relieveMemoryPressure', () => {
  const r = (id: number, rank: number, memMb: number, running = false, swapped = false): Resident => ({ id, rank, memMb, running, swapped });

  it('does nothing without pressure', () => {
    expect(relieveMemoryPressure([r(1, 0, 100)], 1000, 0)).toEqual({ evict: [], swapOut: [], kill: [] });
  });

  it('swaps out the lowest non-running classes first, running ones only when that is not enough', () => {
    const d = relieveMemoryPressure([r(1, 3, 400), r(2, 0, 300), r(3, 1, 300), r(4, 0, 500, true)], 1000, 10_000);
    // 1500 MB in 1000: batch(2) then standard(3); the running batch task stays
    expect(d).toEqual({ evict: [], swapOut: [2, 3], kill: [] });
    const d2 = relieveMemoryPressure([r(1, 3, 400), r(2, 0, 300), r(3, 1, 300), r(4, 0, 200, true)], 1000, 10_000);
    expect(d2).toEqual({ evict: [], swapOut: [2], kill: [] });
    // running tasks alone exceed RAM: after the waiting ones, the lowest running class goes to swap
    const d3 = relieveMemoryPressure([r(1, 3, 700, true), r(2, 0, 700, true), r(3, 1, 100)], 1000, 10_000);
    expect(d3).toEqual({ evict: [], swapOut: [3, 2], kill: [] });
  });

  it('evicts idle residents first, lowest class first, before swapping or killing anything that holds work', () => {
    const idle = (id: number, rank: number, memMb: number): Resident => ({ ...r(id, rank, memMb), idle: true });
    // 1600 MB in 1000, no swap: the idle batch (500) and the idle critical (300) go; the busy ones stay
    expect(relieveMemoryPressure([idle(1, 3, 300), idle(2, 0, 500), r(3, 0, 400), r(4, 3, 400, true)], 1000, 0)).toEqual({ evict: [2, 1], swapOut: [], kill: [] });
    // idle ones are not enough: then the lowest class holding work is killed
    expect(relieveMemoryPressure([idle(1, 3, 100), r(2, 0, 600), r(3, 3, 600, true)], 1000, 0)).toEqual({ evict: [1], swapOut: [], kill: [2] });
  });

  it('swaps what fits, then kills once swap is full', () => {
    // 1200 MB in 600 MB of RAM, 400 MB of swap: batch(1) is swapped out, then standard(2) no longer fits and is killed
    expect(relieveMemoryPressure([r(1, 0, 400), r(2, 1, 400), r(3, 2, 400)], 600, 400)).toEqual({ evict: [], swapOut: [1], kill: [2] });
  });

  it('kills when swap is exhausted, lowest class and not-running first', () => {
    const d = relieveMemoryPressure([r(1, 3, 600), r(2, 0, 600), r(3, 2, 600, true)], 1000, 500);
    // 1800 in RAM, nothing fits the 500 MB swap: kill batch(2), then critical(1) (not running) before the running one
    expect(d).toEqual({ evict: [], swapOut: [], kill: [2, 1] });
    const d2 = relieveMemoryPressure([r(1, 1, 400), r(2, 0, 400), r(3, 0, 400, false, true), r(4, 2, 600, true)], 1000, 800);
    // swap holds 400; batch(2) fits (800), then standard(1) does not: it is killed
    expect(d2).toEqual({ evict: [], swapOut: [2], kill: [] });
  });
});

describe('baselines', () => {
  it('processor sharing slows everyone down together', () => {
    const ps = new ProcessorSharing(1);
    ps.add(1, 10, 0);
    ps.add(2, 10, 0);
    expect(ps.nextCompletion(0)).toEqual({ id: 1, at: 20 });
    ps.remove(1, 20);
    expect(ps.nextCompletion(20)?.at).toBeCloseTo(20);
  });

  it('EDF pops the earliest deadline; deadlines stretch for cheaper classes', () => {
    expect(edfDeadline(0, 10, 2, 2)).toBe(10);
    expect(edfDeadline(0, 10, 0.5, 2)).toBe(40);
    const q = new EdfQueue<{ id: number; deadline: number }>();
    for (const [id, d] of [[1, 30], [2, 10], [3, 20], [4, 10]] as const) q.push({ id, deadline: d });
    expect([q.pop()?.id, q.pop()?.id, q.pop()?.id, q.pop()?.id, q.pop()]).toEqual([2, 4, 3, 1, undefined]);
  });
});

describe('PlacementPipeline', () => {
  const node = (id: string, over: Partial<NodeView>): NodeView => ({ id, cores: 8, busyCores: 0, memoryMb: 1000, freeMemoryMb: 1000, running: 0, sameFunction: 0, hasCode: false, idle: false, ...over });

  it('filters, then picks by weighted score; weights decide between plugins', () => {
    const nodes = [node('full', { freeMemoryMb: 10 }), node('busy-cached', { running: 8, hasCode: true }), node('empty', {})];
    const byLoad = new PlacementPipeline({ filters: [capacityFit], scorers: [{ plugin: leastLoaded, weight: 1 }, { plugin: codeLocality, weight: 0.1 }], sampleK: 0 });
    expect(byLoad.place(nodes, { memoryHintMb: 100 }, createRng(1))).toBe(2);
    const byCode = new PlacementPipeline({ filters: [capacityFit], scorers: [{ plugin: leastLoaded, weight: 1 }, { plugin: codeLocality, weight: 1 }], sampleK: 0 });
    expect(byCode.place(nodes, { memoryHintMb: 100 }, createRng(1))).toBe(1);
    expect(byCode.place([node('x', { freeMemoryMb: 1 })], { memoryHintMb: 100 }, createRng(1))).toBe(-1);
    expect(byCode.place([], { memoryHintMb: 0 }, createRng(1))).toBe(-1);
    const byIdle = new PlacementPipeline({ filters: [], scorers: [{ plugin: leastLoaded, weight: 1 }, { plugin: idlePreferred, weight: 2 }], sampleK: 0 });
    expect(byIdle.place([node('a', {}), node('b', { running: 4, idle: true })], { memoryHintMb: 0 }, createRng(1))).toBe(1);
  });

  it('places by class: an idle core first, else where the work would preempt a lower class, else nowhere', () => {
    const p = new PlacementPipeline({ filters: [capacityFit, classFit], scorers: [{ plugin: freeCores, weight: 1 }, { plugin: leastLoaded, weight: 0.1 }], sampleK: 0 });
    const critBusy = node('crit', { cores: 2, busyCores: 2, lowestBusyRank: 3 });
    const batchBusy = node('batch', { cores: 2, busyCores: 2, lowestBusyRank: 0 });
    const free = node('free', { cores: 2, busyCores: 1, lowestBusyRank: -1 });
    expect(p.place([critBusy, batchBusy, free], { memoryHintMb: 0, rank: 3 }, createRng(1))).toBe(2);
    expect(p.place([critBusy, batchBusy], { memoryHintMb: 0, rank: 3 }, createRng(1))).toBe(1);
    // a batch call would only queue behind equals or betters: it waits
    expect(p.place([critBusy, batchBusy], { memoryHintMb: 0, rank: 0 }, createRng(1))).toBe(-1);
  });

  it('samples k nodes (power-of-k) and, when none of them fits, scans all before giving up', () => {
    const many = Array.from({ length: 50 }, (_, i) => node(`n${i}`, { cores: 1, busyCores: 1, lowestBusyRank: 3 }));
    many[37] = node('n37', { cores: 1, busyCores: 0 });
    const sampled = new PlacementPipeline({ filters: [classFit], scorers: [{ plugin: leastLoaded, weight: 1 }], sampleK: 2 });
    const scanning = new PlacementPipeline({ filters: [classFit], scorers: [{ plugin: leastLoaded, weight: 1 }], sampleK: 2, scanOnMiss: true });
    let missed = 0;
    for (let seed = 1; seed <= 20; seed++) {
      if (sampled.place(many, { memoryHintMb: 0, rank: 1 }, createRng(seed)) === -1) missed++;
      expect(scanning.place(many, { memoryHintMb: 0, rank: 1 }, createRng(seed))).toBe(37);
    }
    expect(missed).toBeGreaterThan(10);
  });
});
