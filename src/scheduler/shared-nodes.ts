/**
 * What every scheduler core must see of every worker, in one
 * SharedArrayBuffer: whether it takes work, its cores, its free memory, how
 * many of its cores run which price class, and when it last spoke. The main
 * thread owns a worker's slot (it hears the worker's heartbeats on the control
 * link) and writes its identity, memory and liveness; each scheduler core adds
 * and removes the sandboxes it runs there (busy counts by class) and takes
 * memory for the sandboxes it places, so that placement on any core sees the
 * whole cluster, not its own shard only. Idle cores themselves are claimed in
 * the SharedCorePool (its machine index is the slot index here).
 *
 * Layout: a header line, then one 64-byte line (16 Int32) per slot, so no two
 * slots share a cache line, and a Float64 array of heartbeat times after them.
 *
 *   header  magic, version, slots, ranks, ready slots
 *   slot    state, generation, cores, free memory (MB), busy, busy of rank
 *           0 … ranks-1
 *
 * state: 0 free, 1 joining (links being opened), 2 ready, 3 draining, 4 gone.
 * Counts written by several threads change with Atomics.add; memory is taken
 * with compareExchange so two cores placing at once never both take the last
 * of it; the rest has one writer (the main thread) and is read with plain or
 * atomic loads. No I/O, clock or logging.
 */

const MAGIC = 0x534e5431; // "SNT1"
const VERSION = 1;
const LINE = 16;
const H_MAGIC = 0;
const H_VERSION = 1;
const H_SLOTS = 2;
const H_RANKS = 3;
const H_READY = 4;
const F_STATE = 0;
const F_GEN = 1;
const F_CORES = 2;
const F_FREE_MB = 3;
const F_BUSY = 4;
const F_RANKS = 5;
/** Price classes a slot line has room for. */
export const MAX_RANKS = LINE - F_RANKS;

export const SlotState = { free: 0, joining: 1, ready: 2, draining: 3, gone: 4 } as const;
export type SlotStateValue = (typeof SlotState)[keyof typeof SlotState];

export class SharedNodes {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
  readonly ranks: number;
  private readonly a: Int32Array;
  private readonly beats: Float64Array;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    const h = new Int32Array(buffer, 0, LINE);
    if (Atomics.load(h, H_MAGIC) !== MAGIC || Atomics.load(h, H_VERSION) !== VERSION) throw new RangeError('SharedNodes.attach: not a shared node table of this version');
    this.slots = Atomics.load(h, H_SLOTS);
    this.ranks = Atomics.load(h, H_RANKS);
    this.a = new Int32Array(buffer, 0, LINE * (1 + this.slots));
    this.beats = new Float64Array(buffer, LINE * 4 * (1 + this.slots), this.slots);
  }

  static byteLength(slots: number): number {
    return LINE * 4 * (1 + slots) + 8 * slots;
  }

  static create(slots: number, ranks: number): SharedNodes {
    if (!Number.isInteger(slots) || slots < 1 || slots > 1 << 20) throw new RangeError(`shared node table: slots must be an integer from 1 to ${1 << 20}, got ${String(slots)}`);
    if (!Number.isInteger(ranks) || ranks < 1 || ranks > MAX_RANKS) throw new RangeError(`shared node table: at most ${MAX_RANKS} price classes, got ${String(ranks)}`);
    const buffer = new SharedArrayBuffer(SharedNodes.byteLength(slots));
    const h = new Int32Array(buffer, 0, LINE);
    h[H_MAGIC] = MAGIC;
    h[H_VERSION] = VERSION;
    h[H_SLOTS] = slots;
    h[H_RANKS] = ranks;
    return new SharedNodes(buffer);
  }

  static attach(buffer: SharedArrayBuffer): SharedNodes {
    if (!(buffer instanceof SharedArrayBuffer)) throw new TypeError('SharedNodes.attach: expected a SharedArrayBuffer');
    return new SharedNodes(buffer);
  }

  private at(slot: number, field: number): number {
    return LINE * (1 + slot) + field;
  }

  // ---- the main thread's writes (one writer per slot) ----

  /** A worker took this slot: joining, with its cores and memory; returns the slot's new generation. */
  open(slot: number, cores: number, freeMemoryMb: number, now: number): number {
    const a = this.a;
    for (let f = F_BUSY; f < LINE; f++) Atomics.store(a, this.at(slot, f), 0);
    Atomics.store(a, this.at(slot, F_CORES), cores);
    Atomics.store(a, this.at(slot, F_FREE_MB), Math.max(0, Math.floor(freeMemoryMb)));
    this.beats[slot] = now;
    const gen = Atomics.add(a, this.at(slot, F_GEN), 1) + 1;
    Atomics.store(a, this.at(slot, F_STATE), SlotState.joining);
    return gen;
  }

  setState(slot: number, state: SlotStateValue): void {
    const before = Atomics.exchange(this.a, this.at(slot, F_STATE), state);
    if (before === SlotState.ready && state !== SlotState.ready) Atomics.sub(this.a, H_READY, 1);
    if (before !== SlotState.ready && state === SlotState.ready) Atomics.add(this.a, H_READY, 1);
  }

  /** A heartbeat: the worker's free memory, and when it came (absolute ms). */
  report(slot: number, freeMemoryMb: number, now: number): void {
    Atomics.store(this.a, this.at(slot, F_FREE_MB), Math.max(0, Math.min(2 ** 31 - 1, Math.floor(freeMemoryMb))));
    this.beats[slot] = now;
  }

  // ---- anyone's reads ----

  state(slot: number): number {
    return Atomics.load(this.a, this.at(slot, F_STATE));
  }

  isReady(slot: number): boolean {
    return Atomics.load(this.a, this.at(slot, F_STATE)) === SlotState.ready;
  }

  generation(slot: number): number {
    return Atomics.load(this.a, this.at(slot, F_GEN));
  }

  /** Slots in state ready. */
  readyCount(): number {
    return Atomics.load(this.a, H_READY);
  }

  cores(slot: number): number {
    return this.a[this.at(slot, F_CORES)] as number;
  }

  freeMemoryMb(slot: number): number {
    return Atomics.load(this.a, this.at(slot, F_FREE_MB));
  }

  /** When the worker last sent a heartbeat, absolute ms (performance.timeOrigin + now()). */
  lastHeartbeat(slot: number): number {
    return this.beats[slot] as number;
  }

  /** Sandboxes running calls on its cores, every scheduler core's together. */
  busy(slot: number): number {
    return Atomics.load(this.a, this.at(slot, F_BUSY));
  }

  busyOfRank(slot: number, rank: number): number {
    return Atomics.load(this.a, this.at(slot, F_RANKS + rank));
  }

  /** The lowest class rank running on its cores when every core is busy; -1 when a core is idle (or none runs). */
  lowestBusyRank(slot: number): number {
    if (this.busy(slot) < this.cores(slot)) return -1;
    for (let r = 0; r < this.ranks; r++) if (this.busyOfRank(slot, r) > 0) return r;
    return -1;
  }

  // ---- the scheduler cores' writes ----

  /** A sandbox there changed the class it runs at: from rank `from` to `to` (-1: not running). */
  moveBusy(slot: number, from: number, to: number): void {
    const a = this.a;
    if (from >= 0) {
      Atomics.sub(a, this.at(slot, F_RANKS + Math.min(from, this.ranks - 1)), 1);
      if (to < 0) Atomics.sub(a, this.at(slot, F_BUSY), 1);
    }
    if (to >= 0) {
      Atomics.add(a, this.at(slot, F_RANKS + Math.min(to, this.ranks - 1)), 1);
      if (from < 0) Atomics.add(a, this.at(slot, F_BUSY), 1);
    }
  }

  /** Count `mb` of its free memory as taken by a new sandbox, if that much is free (until its next report). */
  takeMemory(slot: number, mb: number): boolean {
    const a = this.a;
    const i = this.at(slot, F_FREE_MB);
    let v = Atomics.load(a, i);
    for (;;) {
      if (v < mb) return false;
      const now = Atomics.compareExchange(a, i, v, v - mb);
      if (now === v) return true;
      v = now;
    }
  }
}
