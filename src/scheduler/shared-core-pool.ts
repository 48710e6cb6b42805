/**
 * The core pool of seed 002 §4 for several scheduler threads at once: the
 * cluster's idle worker cores, split into one list per scheduler shard, kept
 * entirely in one SharedArrayBuffer so that every `worker_threads` thread can
 * claim and free cores in it without a lock.
 *
 * Relation to the sequential pool (src/policies/core-pool.ts, `CorePool`): the
 * same model and the same API shape — cores are ints `machine × coresPerMachine
 * + core`, machines are dealt round-robin to shards (`homeOf`), `acquire(shard)`
 * takes from the shard's own list and otherwise steals from the shard with the
 * most idle cores, `release(core)` returns a core to its home shard, `idleOn`
 * counts a shard's idle cores. Driven from one thread, both pools hand out the
 * same number of cores from the same shards after any sequence of calls
 * (a test checks this); they differ in which core of a shard comes next
 * (`CorePool` pops the most recently freed one, this pool the first idle one
 * at or after a rotating position). `CorePool` stays the simulator's pool:
 * it is several times cheaper per decision when only one thread decides.
 *
 * Machines that join and leave at run time, with different core counts (the
 * live control plane): `createEmpty` builds the same layout with no core idle;
 * `addCores(machine, count)` makes the machine's first `count` cores idle, each
 * exactly as `release` would (a machine may have fewer cores than
 * `coresPerMachine`); `acquireOn(machine)` claims an idle core of that machine
 * only; `withdraw(machine)` claims every idle core of a machine that is
 * leaving; `idleOnMachine(machine)` counts its idle cores (a hint).
 * The other operations (create, attach, homeOf, idleOn, idleTotal, steals,
 * acquire, release, idleCores, audit) and the layout are unchanged.
 *
 * Layout (all Int32; each shard's block starts a whole number of 64-byte lines
 * from the start of the buffer, so in a line-aligned buffer no two shards share
 * a cache line):
 *
 *   header   magic, layout version, shards, machines, coresPerMachine
 *   per shard
 *     state    idle count in the low `countBits` bits, a release tally above
 *     hint     the bitmap word after the one the last claim took a core from:
 *              the next search starts there, so claims go round the shard's
 *              machines rather than filling the first one (a hint, see 4)
 *     steals   cores this shard took from other shards' lists
 *     summary  bit w set ⇔ word w of the bitmap may have an idle core
 *     bitmap   bit i set ⇔ the shard's i-th core is idle (in this list)
 *
 * A shard's cores are numbered densely: the shard's k-th machine (machines s,
 * s + shards, s + 2·shards, …) owns bits k·coresPerMachine … +coresPerMachine−1.
 * A machine's bits are therefore contiguous, and may span two words or, when
 * coresPerMachine > 32, more.
 *
 * Invariants, in plain words:
 *
 * 1. A core is idle exactly when its bit is set. The bit is the claim word:
 *    claiming a core is a compareExchange that clears one set bit, so of two
 *    threads that try to clear the same bit exactly one succeeds. Every core
 *    has exactly one bit (in its home shard's bitmap), so a core cannot be in
 *    two lists, and it cannot be handed out twice before it is released.
 *    A bitmap has no ABA problem: a compareExchange on a word succeeds only if
 *    the word still holds the value read, and then every bit read as set is
 *    still set — whatever happened in between — so clearing one of them is
 *    right. (A Treiber stack would need a tag against ABA, and a 32-bit word
 *    leaves too few tag bits for a tag that cannot wrap while a thread sleeps.)
 * 2. Nothing is lost: `release` sets the bit before it counts the core, and a
 *    claimer that has reserved a core (below) always finds some set bit.
 * 3. The idle count is a semaphore over the bits. `acquire` (and
 *    `acquireOn`) first reserves a core by decrementing a count above zero
 *    (compareExchange), and only then searches the bitmap; `release` sets the
 *    bit first and then increments.
 *    So, at every instant, set bits ≥ count + threads holding an unspent
 *    reservation on the shard: a thread with a reservation always has a bit
 *    to find, and no thread ever waits for another to finish. The count is
 *    therefore exact: `idleOn(shard)` is the number of cores that a claim can
 *    still get, never an estimate.
 * 4. The summary and the hint are hints. A summary bit may be set over an
 *    empty word (a claim that empties a word leaves its mark; the next search
 *    that finds the word empty clears it) and, for an instant, clear over a
 *    word with an idle core (between that search clearing the mark and
 *    re-reading the word, when a release filled it meanwhile); a search that
 *    finds nothing through the summary therefore reads the bitmap words
 *    themselves, and repairs the summary where it was wrong.
 * 5. `acquire` returns -1 only when there was an instant during the call at
 *    which every shard's count was zero: it reads every shard's state word,
 *    finds every count zero, reads them all again and finds every word
 *    unchanged. Each release, and each unit an acquireOn gives back
 *    (invariant 6), adds one to the count and one to the tally in a single
 *    Atomics.add, so an unchanged word means neither landed in that shard
 *    between the two reads, and counts only fall otherwise; hence all
 *    counts were zero when the first pass ended. The tally has 32 − countBits
 *    bits (≥ 10); the one ABA left is 2^(32 − countBits) releases to one shard,
 *    each followed by a claim, between the two reads of that shard. Its only
 *    effect would be a -1 that should have been a retry — never a core handed
 *    out twice or lost.
 * 6. `acquireOn(machine)` claims like `acquire`, but only among the
 *    machine's bits: it reserves a unit of the home shard's count (invariant
 *    3), then clears a set bit of the machine. If the machine has none, the
 *    unit goes back, and it goes back exactly as a release counts a core:
 *    count + 1 and tally + 1 in one Atomics.add. While the unit is held it is
 *    a claim in progress like any other, and an `acquireElsewhere` that reads
 *    the count as zero is right: no claim could get that unit then. (To other
 *    threads it is as if the acquireOn had held a core for that time, so
 *    `acquire` may answer -1 while the only idle core is reserved by an
 *    acquireOn that then gives it back.) When the unit comes back the count
 *    rises, and invariant 5 needs every rise to move the tally. A give-back of
 *    count + 1 alone would restore the word the reservation replaced, and a
 *    later reservation would restore the word an observer read while the unit
 *    was held: the observer would read a zero count and the same word twice
 *    though the count was 1 in between, and, with the same happening in the
 *    other shards at staggered times, would answer -1 although at every
 *    instant some count was above zero. With the tally moved, its second read
 *    differs and it looks again. (A test drives that interleaving on two
 *    threads.) Invariant 3 holds throughout: the unit goes back without a bit
 *    having been cleared for it.
 * 7. `acquireOn` answers -1 only when, at some instant during the call, no
 *    claim could have got a core of the machine: either the shard's count was
 *    zero (read atomically; every set bit in the shard was then promised to a
 *    claimer holding a unit, or belonged to a release not yet counted), or
 *    no bit of the machine was set except bits of releases not yet counted.
 *    The scan reads each of the machine's words atomically. For a machine
 *    within one word, that read is the instant. For several words, the scan
 *    stands only if the tally did not move between the reservation and the
 *    end of the scan: then no release counted a core in between, so a bit of
 *    the machine that was set and counted when the last word was read was
 *    already set and counted when its own word was read, and would have been
 *    found (a test drives that case on two threads). Otherwise the call
 *    scans again, keeping its unit; it scans again only because a release
 *    (or another give-back) succeeded, so progress stays lock-free. (The ABA
 *    of invariant 5 applies: 2^(32 − countBits) releases during one scan
 *    could make a -1 that should have been a rescan.)
 * 8. `withdraw(machine)` is acquireOn repeated until it answers -1: it claims,
 *    one at a time, every core of the machine that a claim could get, and
 *    returns them. It is not atomic, and the pool does not know that a
 *    machine is gone: cores that other threads hold are not touched, and a
 *    holder that releases one later makes it idle and claimable again, like
 *    any release. Nor does it take an idle core of the machine while the
 *    shard's count is zero: that core is promised to a claimer holding a
 *    unit, which may take it (a core of the machine handed out after all) or
 *    another one (then this core stays idle, for any later claim to take).
 *    The caller decides what happens to such cores: drop them and their
 *    releases, or withdraw again later (`idleOnMachine` tells whether any is
 *    left). `addCores` is for cores that are neither idle nor held: it
 *    throws if one is idle, but cannot tell whether one is held.
 *
 * Progress: lock-free. Every loop retries only because another thread's
 * operation changed the word it read (succeeded in the meantime); no thread
 * waits for another, and a thread that stops mid-operation never stops others.
 * Every write is atomic: Atomics.store, add, compareExchange and the
 * single-instruction read-modify-writes Atomics.or and Atomics.and; no
 * Atomics.wait. Some reads on the fast path are plain reads (tear-free for
 * aligned Int32): the first guess of a word that a compareExchange then
 * confirms, the hint, and the summary. A stale guess fails the
 * compareExchange or costs a detour, never a wrong answer; what decides -1
 * (invariants 5 and 7) and what guarantees progress (the claimer's second
 * pass) read atomically. This matters because Node 20's V8 does not inline
 * Atomics: each call costs about 8 ns here, a plain read about 1.
 *
 * Release is trusted: it must be called once per acquired core, by its holder
 * (a core from acquireOn or withdraw as any other). Releasing an idle core
 * throws; releasing a core that another thread has claimed again since cannot
 * be told from a legitimate release. `addCores` is trusted the same way
 * (invariant 8).
 *
 * No I/O, clocks or logging: a policy-level structure like `CorePool`.
 */

const MAGIC = 0x53435031; // "SCP1"
const LAYOUT_VERSION = 1;
/** Int32s in a 64-byte cache line. */
const LINE = 16;
const HEADER_INTS = LINE;
const H_MAGIC = 0;
const H_VERSION = 1;
const H_SHARDS = 2;
const H_MACHINES = 3;
const H_CORES_PER_MACHINE = 4;
const S_STATE = 0;
const S_HINT = 1;
const S_STEALS = 2;
const SHARD_HEAD_INTS = LINE;

/** Most scheduler shards one pool serves. */
export const MAX_SHARDS = 1024;
/** Most worker cores one pool tracks (2^21): leaves the release tally at least 10 bits. */
export const MAX_CORES = 1 << 21;

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Everything about the layout follows from the three dimensions. */
interface Layout {
  shards: number;
  machines: number;
  coresPerMachine: number;
  totalCores: number;
  /** Bits of the shard with the most cores; every shard's bitmap has room for this many. */
  maxLocalCores: number;
  words: number;
  summaryWords: number;
  /** Ints from a shard's block to the next. */
  stride: number;
  /** Ints from a shard's block to its bitmap. */
  wordsOffset: number;
  countBits: number;
  totalInts: number;
}

function checkDimension(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`shared core pool: ${name} must be an integer from 1 to ${max}, got ${String(v)}`);
}

function layoutOf(shards: number, machines: number, coresPerMachine: number): Layout {
  checkDimension('shards', shards, MAX_SHARDS);
  checkDimension('machines', machines, MAX_CORES);
  checkDimension('coresPerMachine', coresPerMachine, MAX_CORES);
  const totalCores = machines * coresPerMachine;
  if (totalCores > MAX_CORES) throw new RangeError(`shared core pool: ${machines} machines × ${coresPerMachine} cores = ${totalCores} cores, more than the ${MAX_CORES} one pool can track`);
  const maxLocalCores = Math.ceil(machines / shards) * coresPerMachine;
  const words = Math.ceil(maxLocalCores / 32);
  const summaryWords = Math.ceil(words / 32);
  const wordsOffset = SHARD_HEAD_INTS + roundUp(summaryWords, LINE);
  const stride = wordsOffset + roundUp(words, LINE);
  return { shards, machines, coresPerMachine, totalCores, maxLocalCores, words, summaryWords, stride, wordsOffset, countBits: 32 - Math.clz32(maxLocalCores), totalInts: HEADER_INTS + shards * stride };
}

/** Index of the lowest set bit of a nonzero int. */
const lowestBit = (v: number): number => 31 - Math.clz32(v & -v);

/** Set bits of an int. */
function popcount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** The bits of word `w` that lie in bit range first … end − 1 (first < end). */
function rangeMask(w: number, first: number, end: number): number {
  const lo = w === first >>> 5 ? first & 31 : 0;
  const hi = w === (end - 1) >>> 5 ? (end - 1) & 31 : 31;
  return (-1 >>> (31 - hi)) & (-1 << lo);
}

export class SharedCorePool {
  readonly shards: number;
  readonly machines: number;
  readonly coresPerMachine: number;
  readonly totalCores: number;
  /** The pool's whole state; pass it to other threads and `attach` it there. */
  readonly buffer: SharedArrayBuffer;
  private readonly a: Int32Array;
  private readonly stride: number;
  private readonly wordsOffset: number;
  private readonly words: number;
  private readonly summaryWords: number;
  private readonly countMask: number;
  private readonly countBits: number;
  /** What one release adds to a state word: one to the count, one to the tally. */
  private readonly releaseIncrement: number;
  /** This view's scratch for reading every shard's state word (views are per thread). */
  private readonly seen: Int32Array;

  private constructor(buffer: SharedArrayBuffer, l: Layout) {
    this.buffer = buffer;
    this.a = new Int32Array(buffer, 0, l.totalInts);
    this.shards = l.shards;
    this.machines = l.machines;
    this.coresPerMachine = l.coresPerMachine;
    this.totalCores = l.totalCores;
    this.stride = l.stride;
    this.wordsOffset = l.wordsOffset;
    this.words = l.words;
    this.summaryWords = l.summaryWords;
    this.countMask = (1 << l.countBits) - 1;
    this.countBits = l.countBits;
    this.releaseIncrement = 1 + (1 << l.countBits);
    this.seen = new Int32Array(l.shards);
  }

  /** Bytes of the SharedArrayBuffer a pool of these dimensions takes. */
  static byteLength(shards: number, machines: number, coresPerMachine: number): number {
    return layoutOf(shards, machines, coresPerMachine).totalInts * 4;
  }

  /** A new pool with every core idle in its home shard's list. */
  static create(shards: number, machines: number, coresPerMachine: number): SharedCorePool {
    return SharedCorePool.build(layoutOf(shards, machines, coresPerMachine), true);
  }

  /**
   * A new pool of the same layout with no core idle (every bit clear, every
   * count zero): machines join later through `addCores`.
   */
  static createEmpty(shards: number, machines: number, coresPerMachine: number): SharedCorePool {
    return SharedCorePool.build(layoutOf(shards, machines, coresPerMachine), false);
  }

  private static build(l: Layout, idle: boolean): SharedCorePool {
    const pool = new SharedCorePool(new SharedArrayBuffer(l.totalInts * 4), l);
    const a = pool.a;
    a[H_MAGIC] = MAGIC;
    a[H_VERSION] = LAYOUT_VERSION;
    a[H_SHARDS] = l.shards;
    a[H_MACHINES] = l.machines;
    a[H_CORES_PER_MACHINE] = l.coresPerMachine;
    for (let s = 0; s < l.shards && idle; s++) {
      const local = pool.localCores(s);
      const head = pool.head(s);
      for (let i = 0; i < local; i++) {
        const w = i >>> 5;
        a[head + l.wordsOffset + w] = (a[head + l.wordsOffset + w] as number) | (1 << (i & 31));
        a[head + SHARD_HEAD_INTS + (w >>> 5)] = (a[head + SHARD_HEAD_INTS + (w >>> 5)] as number) | (1 << (w & 31));
      }
      a[head + S_STATE] = local;
    }
    // Publishing the buffer (postMessage, workerData) orders these plain writes before any other thread reads them.
    return pool;
  }

  /** A view on a pool another thread created; reads the dimensions from the buffer's header. */
  static attach(buffer: SharedArrayBuffer): SharedCorePool {
    if (!(buffer instanceof SharedArrayBuffer)) throw new TypeError(`SharedCorePool.attach: expected a SharedArrayBuffer, got ${Object.prototype.toString.call(buffer)}`);
    if (buffer.byteLength < HEADER_INTS * 4) throw new RangeError(`SharedCorePool.attach: ${buffer.byteLength} bytes is too small to hold a shared core pool`);
    const h = new Int32Array(buffer, 0, HEADER_INTS);
    const magic = Atomics.load(h, H_MAGIC);
    if (magic !== MAGIC) throw new RangeError(`SharedCorePool.attach: not a shared core pool (header word 0x${(magic >>> 0).toString(16)}, expected 0x${MAGIC.toString(16)})`);
    const version = Atomics.load(h, H_VERSION);
    if (version !== LAYOUT_VERSION) throw new RangeError(`SharedCorePool.attach: the buffer has layout version ${version}, this build reads version ${LAYOUT_VERSION}`);
    const l = layoutOf(Atomics.load(h, H_SHARDS), Atomics.load(h, H_MACHINES), Atomics.load(h, H_CORES_PER_MACHINE));
    if (buffer.byteLength !== l.totalInts * 4) throw new RangeError(`SharedCorePool.attach: the buffer is ${buffer.byteLength} bytes; a pool of ${l.shards} shards × ${l.machines} machines × ${l.coresPerMachine} cores takes ${l.totalInts * 4}`);
    return new SharedCorePool(buffer, l);
  }

  /** The shard a core belongs to when it is freed (as in `CorePool`). */
  homeOf(core: number): number {
    this.checkCore(core);
    return Math.floor(core / this.coresPerMachine) % this.shards;
  }

  /** Cores idle in `shard`'s list that a claim can still get (exact at the instant it is read). */
  idleOn(shard: number): number {
    this.checkShard(shard);
    return Atomics.load(this.a, this.head(shard) + S_STATE) & this.countMask;
  }

  /** Idle cores in every list: the sum of `idleOn`, each read at its own instant. */
  idleTotal(): number {
    let n = 0;
    for (let s = 0; s < this.shards; s++) n += Atomics.load(this.a, this.head(s) + S_STATE) & this.countMask;
    return n;
  }

  /** Cores that `shard` claimed from another shard's list since the pool was created. */
  steals(shard: number): number {
    this.checkShard(shard);
    return Atomics.load(this.a, this.head(shard) + S_STEALS);
  }

  /**
   * Claim an idle core for `shard`: from its own list, else from the list of
   * the shard with the most idle cores. -1 when, at some instant during the
   * call, no list had an idle core (invariant 5).
   */
  acquire(shard: number): number {
    this.checkShard(shard);
    // the plain read is a hint: reserve() confirms it with a compareExchange
    if (this.reserve(shard, this.a[this.head(shard) + S_STATE] as number)) return this.claim(shard);
    return this.acquireElsewhere(shard);
  }

  /** Return a claimed core to its home shard's list. Throws if the core is idle already. */
  release(core: number): void {
    this.checkCore(core);
    const cpm = this.coresPerMachine;
    const machine = Math.floor(core / cpm);
    const s = machine % this.shards;
    this.releaseLocal(this.head(s), ((machine - s) / this.shards) * cpm + (core - machine * cpm), core);
  }

  /**
   * Make the machine's cores `machine × coresPerMachine + 0 … count − 1` idle
   * in its home shard's list, each by the steps of `release`. For a machine
   * that joins (or joins again): none of these cores may be idle — a RangeError
   * before any is added — and none may be held, which the pool cannot check
   * (invariant 8). `count` is from 0 to coresPerMachine.
   */
  addCores(machine: number, count: number): void {
    this.checkMachine(machine);
    const cpm = this.coresPerMachine;
    if (!Number.isInteger(count) || count < 0 || count > cpm) throw new RangeError(`shared core pool: machine ${machine} cannot have ${count} cores: the count must be an integer from 0 to coresPerMachine (${cpm})`);
    const s = machine % this.shards;
    const first = ((machine - s) / this.shards) * cpm;
    const head = this.head(s);
    const idle = this.idleInRange(head, first, first + count);
    if (idle !== -1) throw new RangeError(`shared core pool: cannot add core ${machine * cpm + idle - first} of machine ${machine}: it is idle already`);
    for (let i = 0; i < count; i++) this.releaseLocal(head, first + i, machine * cpm + i);
  }

  /**
   * Claim an idle core of `machine` (a core id, as `acquire` returns), or -1
   * when, at some instant during the call, no claim could have got one of
   * its cores (invariant 7). Reserves in the machine's home shard like
   * `acquire`; takes nothing from other machines and counts no steal.
   */
  acquireOn(machine: number): number {
    this.checkMachine(machine);
    const a = this.a;
    const cpm = this.coresPerMachine;
    const s = machine % this.shards;
    const head = this.head(s);
    const first = ((machine - s) / this.shards) * cpm;
    const end = first + cpm;
    const state = head + S_STATE;
    // Reserve a unit (invariant 3). The plain read is a first guess that the compareExchange confirms;
    // a zero count, which answers -1, is read again atomically (invariant 7).
    let v = a[state] as number;
    if ((v & this.countMask) === 0) v = Atomics.load(a, state);
    for (;;) {
      if ((v & this.countMask) === 0) return -1;
      const now = Atomics.compareExchange(a, state, v, v - 1);
      if (now === v) break;
      v = now;
    }
    // `v - 1` is the state word right after the reservation: the tally a scan over several words is checked against.
    let tally = (v - 1) >>> this.countBits;
    const oneWord = first >>> 5 === (end - 1) >>> 5;
    for (;;) {
      const local = this.takeInRange(head, first, end);
      if (local !== -1) return machine * cpm + (local - first);
      if (oneWord) break;
      // Several words: the scan stands only if no release counted a core during it (invariant 7); else scan again.
      const now = Atomics.load(a, state) >>> this.countBits;
      if (now === tally) break;
      tally = now;
    }
    // Give the unit back as a release counts a core: count + 1 and tally + 1 in one step (invariants 5 and 6).
    Atomics.add(a, state, this.releaseIncrement);
    return -1;
  }

  /**
   * Claim every idle core of `machine` that a claim can get, for a machine
   * that leaves: acquireOn until it answers -1. Returns the cores claimed.
   * Cores other threads hold are not touched; the pool does not know the
   * machine is gone, so their later releases make them idle again unless the
   * caller does otherwise (invariant 8).
   */
  withdraw(machine: number): number[] {
    const out: number[] = [];
    for (let c = this.acquireOn(machine); c !== -1; c = this.acquireOn(machine)) out.push(c);
    return out;
  }

  /**
   * The machine's cores whose bits are set, from plain reads: a hint, exact
   * only when no thread is mid-operation (it counts a release that has not
   * yet counted its core, and a core a reserved claimer is about to take).
   */
  idleOnMachine(machine: number): number {
    this.checkMachine(machine);
    const cpm = this.coresPerMachine;
    const s = machine % this.shards;
    const first = ((machine - s) / this.shards) * cpm;
    const end = first + cpm;
    const words = this.head(s) + this.wordsOffset;
    let n = 0;
    for (let w = first >>> 5; w <= (end - 1) >>> 5; w++) n += popcount((this.a[words + w] as number) & rangeMask(w, first, end));
    return n;
  }

  /** Set bit `local` of the shard at `head` and count it: the steps of a release (invariants 2, 3 and 5). */
  private releaseLocal(head: number, local: number, core: number): void {
    const w = local >>> 5;
    const bit = 1 << (local & 31);
    const before = Atomics.or(this.a, head + this.wordsOffset + w, bit);
    if ((before & bit) !== 0) throw new Error(`shared core pool: core ${core} released while idle (released twice, or never acquired)`);
    // A word that was empty may have lost its summary bit: mark it before the core is counted.
    if (before === 0) Atomics.or(this.a, head + SHARD_HEAD_INTS + (w >>> 5), 1 << (w & 31));
    // The release takes effect here: count + 1 and tally + 1 in one step (invariants 3 and 5).
    Atomics.add(this.a, head + S_STATE, this.releaseIncrement);
  }

  /** The cores idle in `shard`'s list, ascending. For checks and tests: a snapshot only when no thread is mid-operation. */
  idleCores(shard: number): number[] {
    this.checkShard(shard);
    const out: number[] = [];
    const base = this.head(shard) + this.wordsOffset;
    for (let w = 0; w < this.words; w++) {
      let v = Atomics.load(this.a, base + w);
      while (v !== 0) {
        const b = lowestBit(v);
        out.push(this.coreOf(shard, (w << 5) | b));
        v &= v - 1;
      }
    }
    return out;
  }

  /**
   * Problems with the pool's state, none when it is consistent: each count
   * equals its bitmap's set bits, no bit beyond a shard's cores is set, every
   * nonempty word has its summary bit. Meaningful only when no thread is
   * mid-operation (a test's end state).
   */
  audit(): string[] {
    const problems: string[] = [];
    const a = this.a;
    for (let s = 0; s < this.shards; s++) {
      const head = this.head(s);
      const local = this.localCores(s);
      let bits = 0;
      for (let w = 0; w < this.words; w++) {
        const v = Atomics.load(a, head + this.wordsOffset + w);
        for (let x = v; x !== 0; x &= x - 1) {
          bits++;
          const i = (w << 5) | lowestBit(x);
          if (i >= local) problems.push(`shard ${s}: bit ${i} is set but the shard has only ${local} cores`);
        }
        if (v !== 0 && (Atomics.load(a, head + SHARD_HEAD_INTS + (w >>> 5)) & (1 << (w & 31))) === 0) problems.push(`shard ${s}: word ${w} has idle cores but its summary bit is clear`);
      }
      const count = Atomics.load(a, head + S_STATE) & this.countMask;
      if (count !== bits) problems.push(`shard ${s}: count ${count} but ${bits} cores idle in its bitmap`);
    }
    return problems;
  }

  /**
   * Clear the lowest set bit among bits first … end − 1 of the bitmap at
   * `head`, reading each word atomically; its index, or -1 if each word, when
   * read, had none of those bits set. A word emptied here keeps its summary
   * mark (invariant 4).
   */
  private takeInRange(head: number, first: number, end: number): number {
    const a = this.a;
    const words = head + this.wordsOffset;
    for (let w = first >>> 5; w <= (end - 1) >>> 5; w++) {
      const mask = rangeMask(w, first, end);
      let v = Atomics.load(a, words + w);
      while ((v & mask) !== 0) {
        const low = v & mask & -(v & mask);
        const now = Atomics.compareExchange(a, words + w, v, v ^ low);
        if (now === v) return (w << 5) | lowestBit(low);
        v = now;
      }
    }
    return -1;
  }

  /** The lowest index among bits first … end − 1 of the bitmap at `head` whose bit is set (atomic reads), or -1. */
  private idleInRange(head: number, first: number, end: number): number {
    const words = head + this.wordsOffset;
    for (let w = first >>> 5; first < end && w <= (end - 1) >>> 5; w++) {
      const v = Atomics.load(this.a, words + w) & rangeMask(w, first, end);
      if (v !== 0) return (w << 5) | lowestBit(v);
    }
    return -1;
  }

  /** Cores whose home is `shard`. */
  private localCores(shard: number): number {
    return shard < this.machines ? Math.floor((this.machines - 1 - shard) / this.shards + 1) * this.coresPerMachine : 0;
  }

  private head(shard: number): number {
    return HEADER_INTS + shard * this.stride;
  }

  private coreOf(shard: number, local: number): number {
    const cpm = this.coresPerMachine;
    const k = Math.floor(local / cpm);
    return (k * this.shards + shard) * cpm + (local - k * cpm);
  }

  /**
   * Take one unit of `shard`'s count if it has one (invariant 3), starting
   * from `v`, a value of its state word read earlier: plain (a hint) on the
   * fast path, atomic in `acquireElsewhere`. A stale `v` only fails the
   * compareExchange, which returns the word's current value to retry with.
   */
  private reserve(shard: number, v: number): boolean {
    const a = this.a;
    const i = this.head(shard) + S_STATE;
    for (;;) {
      if ((v & this.countMask) === 0) return false;
      const now = Atomics.compareExchange(a, i, v, v - 1);
      if (now === v) return true;
      v = now;
    }
  }

  /** Own list empty: steal from the fullest other list, or establish that every list is empty. Atomic reads only. */
  private acquireElsewhere(shard: number): number {
    const a = this.a;
    const seen = this.seen;
    for (;;) {
      let victim = -1;
      let most = 0;
      for (let s = 0; s < this.shards; s++) {
        const v = Atomics.load(a, this.head(s) + S_STATE);
        seen[s] = v;
        const n = v & this.countMask;
        if (s !== shard && n > most) {
          most = n;
          victim = s;
        }
      }
      // a core freed into our own list since we looked comes first
      if (((seen[shard] as number) & this.countMask) > 0) {
        if (this.reserve(shard, seen[shard] as number)) return this.claim(shard);
        continue;
      }
      if (victim !== -1) {
        if (this.reserve(victim, seen[victim] as number)) {
          Atomics.add(a, this.head(shard) + S_STEALS, 1);
          return this.claim(victim);
        }
        continue; // others emptied it first: look again
      }
      // Every count read zero. If no state word changed since, no release landed anywhere in between (invariant 5).
      let changed = false;
      for (let s = 0; s < this.shards && !changed; s++) changed = Atomics.load(a, this.head(s) + S_STATE) !== seen[s];
      if (!changed) return -1;
    }
  }

  /**
   * Clear one set bit of `shard`'s bitmap; the caller holds a reservation, so
   * one exists (invariant 3). The first pass follows the hint and the summary
   * with plain reads (hints: a stale value costs a detour, never a wrong
   * answer, because only a compareExchange claims); the second reads every
   * word atomically, so a reserved claimer never depends on another thread
   * finishing its summary update.
   */
  private claim(shard: number): number {
    const a = this.a;
    const head = this.head(shard);
    const summary = head + SHARD_HEAD_INTS;
    const n = this.summaryWords;
    const bitmap = head + this.wordsOffset;
    for (;;) {
      const hint = a[head + S_HINT] as number;
      const h = hint < this.words ? hint : 0;
      const k0 = h >>> 5;
      // summary words from the hint's round to it again: the first visit takes only the
      // marks at or after the hint's word, the last only those before it
      for (let i = 0; i <= n; i++) {
        const k = k0 + i < n ? k0 + i : k0 + i - n;
        let marks = a[summary + k] as number;
        if (i === 0) marks &= -1 << (h & 31);
        else if (i === n) marks &= ~(-1 << (h & 31));
        for (; marks !== 0; marks &= marks - 1) {
          const w = (k << 5) | lowestBit(marks);
          const local = this.takeBit(head, w, a[bitmap + w] as number);
          if (local !== -1) {
            // the next claim starts after this word: claims go round the shard's machines instead of filling one first
            Atomics.store(a, head + S_HINT, w + 1 < this.words ? w + 1 : 0);
            return this.coreOf(shard, local);
          }
        }
      }
      const words = head + this.wordsOffset;
      for (let w = 0; w < this.words; w++) {
        const v = Atomics.load(a, words + w);
        if (v === 0) continue;
        Atomics.or(a, summary + (w >>> 5), 1 << (w & 31)); // repair a mark a plain read or an unfinished unmark missed
        const local = this.takeBit(head, w, v);
        if (local !== -1) return this.coreOf(shard, local);
      }
    }
  }

  /**
   * Clear the lowest set bit of word `w`, starting from `v`, a value of the
   * word read earlier; the bit's index, or -1 if the word is empty (then its
   * summary mark is cleared). A word this claim empties keeps its mark: the
   * next search that finds it empty clears it, which saves two atomic
   * operations on the common path (invariant 4 allows a mark over an empty word).
   */
  private takeBit(head: number, w: number, v: number): number {
    const a = this.a;
    const i = head + this.wordsOffset + w;
    for (;;) {
      if (v === 0) {
        this.unmark(head, w);
        return -1;
      }
      const low = v & -v;
      const now = Atomics.compareExchange(a, i, v, v ^ low);
      if (now === v) return (w << 5) | lowestBit(v);
      v = now;
    }
  }

  /** Clear word `w`'s summary mark, then put it back if a release filled the word meanwhile (invariant 4). */
  private unmark(head: number, w: number): void {
    const a = this.a;
    const s = head + SHARD_HEAD_INTS + (w >>> 5);
    const bit = 1 << (w & 31);
    Atomics.and(a, s, ~bit);
    if (Atomics.load(a, head + this.wordsOffset + w) !== 0) Atomics.or(a, s, bit);
  }

  private checkShard(shard: number): void {
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.shards) throw new RangeError(`shard ${shard} is not in 0..${this.shards - 1}`);
  }

  private checkMachine(machine: number): void {
    if (!Number.isInteger(machine) || machine < 0 || machine >= this.machines) throw new RangeError(`machine ${machine} is not in 0..${this.machines - 1}`);
  }

  private checkCore(core: number): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.totalCores) throw new RangeError(`core ${core} is not in 0..${this.totalCores - 1}`);
  }
}
