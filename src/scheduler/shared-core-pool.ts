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
 * Layout (all Int32; each shard's block starts a whole number of 64-byte lines
 * from the start of the buffer, so in a line-aligned buffer no two shards share
 * a cache line):
 *
 *   header   magic, layout version, shards, machines, coresPerMachine
 *   per shard
 *     state    idle count in the low `countBits` bits, a release tally above
 *     hint     summary word where the next search starts (rotates)
 *     steals   cores this shard took from other shards' lists
 *     summary  bit w set ⇔ word w of the bitmap may have an idle core
 *     bitmap   bit i set ⇔ the shard's i-th core is idle (in this list)
 *
 * A shard's cores are numbered densely: the shard's k-th machine (machines s,
 * s + shards, s + 2·shards, …) owns bits k·coresPerMachine … +coresPerMachine−1.
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
 * 3. The idle count is a semaphore over the bits. `acquire` first reserves a
 *    core by decrementing a count above zero (compareExchange), and only then
 *    searches the bitmap; `release` sets the bit first and then increments.
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
 *    unchanged. Each release adds one to the count and one to the tally in a
 *    single Atomics.add, so an unchanged word means no release landed in that
 *    shard between the two reads, and counts only fall otherwise; hence all
 *    counts were zero when the first pass ended. The tally has 32 − countBits
 *    bits (≥ 10); the one ABA left is 2^(32 − countBits) releases to one shard,
 *    each followed by a claim, between the two reads of that shard. Its only
 *    effect would be a -1 that should have been a retry — never a core handed
 *    out twice or lost.
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
 * (invariant 5) and what guarantees progress (the claimer's second pass) read
 * atomically. This matters because Node 20's V8 does not inline Atomics: each
 * call costs about 8 ns here, a plain read about 1.
 *
 * Release is trusted: it must be called once per acquired core, by its holder.
 * Releasing an idle core throws; releasing a core that another thread has
 * claimed again since cannot be told from a legitimate release.
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
    this.releaseIncrement = 1 + (1 << l.countBits);
    this.seen = new Int32Array(l.shards);
  }

  /** Bytes of the SharedArrayBuffer a pool of these dimensions takes. */
  static byteLength(shards: number, machines: number, coresPerMachine: number): number {
    return layoutOf(shards, machines, coresPerMachine).totalInts * 4;
  }

  /** A new pool with every core idle in its home shard's list. */
  static create(shards: number, machines: number, coresPerMachine: number): SharedCorePool {
    const l = layoutOf(shards, machines, coresPerMachine);
    const pool = new SharedCorePool(new SharedArrayBuffer(l.totalInts * 4), l);
    const a = pool.a;
    a[H_MAGIC] = MAGIC;
    a[H_VERSION] = LAYOUT_VERSION;
    a[H_SHARDS] = shards;
    a[H_MACHINES] = machines;
    a[H_CORES_PER_MACHINE] = coresPerMachine;
    for (let s = 0; s < shards; s++) {
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
    const local = ((machine - s) / this.shards) * cpm + (core - machine * cpm);
    const head = this.head(s);
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
    for (;;) {
      const start = a[head + S_HINT] as number;
      for (let i = 0; i < n; i++) {
        const k = start + i < n ? start + i : start + i - n;
        for (let marks = a[summary + k] as number; marks !== 0; marks &= marks - 1) {
          const w = (k << 5) | lowestBit(marks);
          const local = this.takeBit(head, w, a[head + this.wordsOffset + w] as number);
          if (local !== -1) {
            if (k !== start) Atomics.store(a, head + S_HINT, k);
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

  private checkCore(core: number): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.totalCores) throw new RangeError(`core ${core} is not in 0..${this.totalCores - 1}`);
  }
}
