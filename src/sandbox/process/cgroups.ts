import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/logger.js';

export type CgroupMode = 'v2' | 'v1' | 'none';
export type Controller = 'memory' | 'pids' | 'freezer' | 'cpuset' | 'cpu' | 'cpuacct';
const CONTROLLERS: readonly Controller[] = ['memory', 'pids', 'freezer', 'cpuset', 'cpu', 'cpuacct'];

export interface CgroupLimits {
  memoryBytes?: number;
  pids?: number;
}

/** One sandbox's cgroup: a directory per controller (v1) or one directory (v2). */
export interface CgroupHandle {
  readonly name: string;
  /** Directory of each available controller (all the same directory under v2). */
  readonly dirs: ReadonlyMap<Controller, string>;
  /** Files to write the sandbox's first pid into, before it forks anything. */
  readonly procsFiles: readonly string[];
}

/**
 * Per-sandbox cgroups, detected once at start: the unified v2 hierarchy, else
 * the v1 controllers that are mounted and writable. Each sandbox gets its own
 * group with a memory and a pids limit (accounting and, later, freezing and
 * pinning use the same groups); the group is removed when the sandbox's
 * processes are gone. What is unavailable is logged once, never silently.
 */
export class Cgroups {
  readonly mode: CgroupMode;
  /** Controller → this worker's parent directory for sandbox groups. */
  private readonly parents = new Map<Controller, string>();
  private warned = false;

  constructor(
    private readonly log: Logger,
    opts: { nodeId: string; base?: string },
  ) {
    const base = opts.base ?? '/sys/fs/cgroup';
    const leaf = `baton-${opts.nodeId.replace(/[^A-Za-z0-9_-]/g, '').slice(-12)}`;
    if (existsSync(join(base, 'cgroup.controllers')) && writable(base)) {
      this.mode = this.setUpV2(base, leaf) ? 'v2' : 'none';
    } else {
      this.mode = this.setUpV1(base, leaf) ? 'v1' : 'none';
    }
    const missing = CONTROLLERS.filter((c) => !this.parents.has(c) && !(this.mode === 'v2' && c === 'cpuacct'));
    if (this.mode === 'none') {
      log.warn(
        'cgroups: no writable cgroup v2 hierarchy and no writable v1 controllers (run the worker as root on a host with cgroups): sandboxes run without memory or pids limits, memory is measured by RSS, and freezing falls back to signals',
      );
    } else {
      log.info(
        { mode: this.mode, controllers: [...this.parents.keys()], root: this.parents.get('memory') ?? [...this.parents.values()][0] },
        `cgroups ${this.mode}: each sandbox gets its own group${missing.length > 0 ? `; unavailable controllers: ${missing.join(', ')}` : ''}`,
      );
    }
  }

  /**
   * Remove sandbox groups a previous run of this worker left behind (killed
   * before it could clean up); call after its leftover processes were killed.
   */
  async removeStale(): Promise<number> {
    const stale = new Set<string>();
    for (const parent of this.parents.values()) {
      for (const name of readdirSync(parent, { withFileTypes: true })) if (name.isDirectory()) stale.add(name.name);
    }
    for (const name of stale) await this.remove({ name, dirs: new Map([...this.parents].map(([c, p]) => [c, join(p, name)])), procsFiles: [] });
    return stale.size;
  }

  /** Remove this worker's own groups (at stop, once its sandboxes are gone). */
  close(): void {
    for (const dir of new Set(this.parents.values())) tryRmdir(dir);
  }

  has(c: Controller): boolean {
    return this.parents.has(c);
  }

  private setUpV2(base: string, leaf: string): boolean {
    try {
      const available = new Set(readFileSync(join(base, 'cgroup.controllers'), 'utf8').trim().split(/\s+/));
      // v2: freezing is built in (cgroup.freeze) and CPU time is in every group's cpu.stat
      const wanted = CONTROLLERS.filter((c) => c !== 'cpuacct' && (c === 'freezer' || available.has(c)));
      const root = join(base, 'baton');
      const parent = join(root, leaf);
      mkdirSync(parent, { recursive: true });
      const enable = wanted
        .filter((c) => c !== 'freezer')
        .map((c) => `+${c}`)
        .join(' ');
      // Controllers must be enabled on the way down; the root cgroup may hold processes, ours hold none.
      for (const dir of [base, root, parent]) {
        try {
          writeFileSync(join(dir, 'cgroup.subtree_control'), enable);
        } catch (e) {
          this.log.warn({ err: e, dir }, 'cgroups v2: could not enable controllers here');
        }
      }
      const enabled = new Set(readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/));
      for (const c of wanted) if (c === 'freezer' || enabled.has(c)) this.parents.set(c, parent);
      return this.parents.size > 0;
    } catch (e) {
      this.log.warn({ err: e }, 'cgroups v2: cannot create the baton cgroup');
      return false;
    }
  }

  private setUpV1(base: string, leaf: string): boolean {
    const own = ownV1Paths();
    for (const c of CONTROLLERS) {
      const mount = join(base, c);
      if (!existsSync(join(mount, 'cgroup.procs'))) continue;
      // Nest under the worker's own group where we may, so the host's limits still apply.
      for (const start of [join(mount, own.get(c) ?? '/'), mount]) {
        if (!writable(start)) continue;
        try {
          const parent = join(start, leaf);
          mkdirSync(parent, { recursive: true });
          if (c === 'cpuset') inheritCpuset(start, parent);
          this.parents.set(c, parent);
          break;
        } catch (e) {
          this.log.debug({ err: e, controller: c, start }, 'cgroups v1: cannot create a group here');
        }
      }
    }
    return this.parents.size > 0;
  }

  /** Create a sandbox's group with its limits. Undefined when cgroups are off or creation failed. */
  create(name: string, limits: CgroupLimits): CgroupHandle | undefined {
    if (this.mode === 'none') return undefined;
    const dirs = new Map<Controller, string>();
    try {
      for (const [c, parent] of this.parents) {
        const dir = join(parent, name);
        if (!existsSync(dir)) mkdirSync(dir);
        dirs.set(c, dir);
        if (c === 'cpuset' && this.mode === 'v1') inheritCpuset(parent, dir);
      }
      this.applyLimits(dirs, limits);
    } catch (e) {
      this.warnOnce(e, 'could not create a sandbox cgroup');
      for (const dir of new Set(dirs.values())) tryRmdir(dir);
      return undefined;
    }
    const procsFiles = [...new Set(dirs.values())].map((d) => join(d, 'cgroup.procs'));
    return { name, dirs, procsFiles };
  }

  private applyLimits(dirs: Map<Controller, string>, limits: CgroupLimits): void {
    const mem = dirs.get('memory');
    if (mem !== undefined && limits.memoryBytes !== undefined) {
      const bytes = String(Math.max(16 * 1024 * 1024, Math.floor(limits.memoryBytes)));
      writeFileSync(join(mem, this.mode === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'), bytes);
    }
    const pids = dirs.get('pids');
    if (pids !== undefined && limits.pids !== undefined) writeFileSync(join(pids, 'pids.max'), String(limits.pids));
  }

  /** Put an already running process into the group (prefer writing the pid before it forks: see procsFiles). */
  place(h: CgroupHandle, pid: number): void {
    for (const f of h.procsFiles) {
      try {
        writeFileSync(f, String(pid));
      } catch (e) {
        this.warnOnce(e, 'could not place a sandbox process in its cgroup');
      }
    }
  }

  /** Remove the group once its processes are gone (they may take a moment to leave it). */
  async remove(h: CgroupHandle): Promise<void> {
    const dirs = [...new Set(h.dirs.values())];
    for (let attempt = 0; attempt < 50 && dirs.length > 0; attempt++) {
      for (let i = dirs.length - 1; i >= 0; i--) if (tryRmdir(dirs[i] as string)) dirs.splice(i, 1);
      if (dirs.length > 0) await new Promise((r) => setTimeout(r, Math.min(10 * (attempt + 1), 100)));
    }
    if (dirs.length > 0) this.log.warn({ dirs }, 'cgroups: sandbox groups still busy after their processes exited; left behind');
  }

  /** Bound the memory of all this worker's sandboxes together (the kernel's backstop under the memory manager). */
  limitTotalMemory(bytes: number): boolean {
    const parent = this.parents.get('memory');
    if (parent === undefined) return false;
    try {
      writeFileSync(join(parent, this.mode === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'), String(Math.floor(bytes)));
      return true;
    } catch (e) {
      this.warnOnce(e, 'could not set the memory limit of all sandboxes together');
      return false;
    }
  }

  /** Resident memory of all sandboxes together (the worker's parent group), bytes. */
  totalMemoryBytes(): number | undefined {
    const parent = this.parents.get('memory');
    return parent === undefined ? undefined : this.memoryBytes({ name: '', dirs: new Map([['memory', parent]]), procsFiles: [] });
  }

  /** Freeze or thaw every process of the group. False when there is no freezer. */
  freeze(h: CgroupHandle, frozen: boolean): boolean {
    const dir = h.dirs.get('freezer');
    if (dir === undefined) return false;
    try {
      if (this.mode === 'v2') writeFileSync(join(dir, 'cgroup.freeze'), frozen ? '1' : '0');
      else writeFileSync(join(dir, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED');
      return true;
    } catch (e) {
      this.warnOnce(e, 'could not freeze or thaw a sandbox');
      return false;
    }
  }

  /** Restrict the group to these CPUs ("3", "0-1"). False without a cpuset controller. */
  pin(h: CgroupHandle, cpus: string): boolean {
    const dir = h.dirs.get('cpuset');
    if (dir === undefined) return false;
    try {
      writeFileSync(join(dir, 'cpuset.cpus'), cpus); // the same file in v1 and v2
      return true;
    } catch (e) {
      this.warnOnce(e, 'could not pin a sandbox to its core');
      return false;
    }
  }

  /** Relative CPU weight (1–10000, 100 is the default share). */
  weight(h: CgroupHandle, w: number): boolean {
    const dir = h.dirs.get('cpu');
    if (dir === undefined) return false;
    try {
      if (this.mode === 'v2') writeFileSync(join(dir, 'cpu.weight'), String(Math.max(1, Math.min(10_000, Math.round(w)))));
      else writeFileSync(join(dir, 'cpu.shares'), String(Math.max(2, Math.round((w * 1024) / 100))));
      return true;
    } catch (e) {
      this.warnOnce(e, 'could not set a sandbox\'s CPU weight');
      return false;
    }
  }

  /** Resident memory of the group in bytes (anonymous + tmpfs, not page cache), or undefined. */
  memoryBytes(h: CgroupHandle): number | undefined {
    const dir = h.dirs.get('memory');
    if (dir === undefined) return undefined;
    try {
      const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
      const field = (name: string): number => {
        const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(stat);
        return m === null ? 0 : Number(m[1]);
      };
      return this.mode === 'v2' ? field('anon') + field('shmem') : field('total_rss') + field('total_shmem') || field('rss') + field('shmem');
    } catch {
      return undefined;
    }
  }

  /** CPU time the group used so far, µs, or undefined. */
  cpuMicros(h: CgroupHandle): number | undefined {
    try {
      if (this.mode === 'v2') {
        const dir = h.dirs.get('memory') ?? [...h.dirs.values()][0];
        if (dir === undefined) return undefined;
        const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
        return m === null ? undefined : Number(m[1]);
      }
      const dir = h.dirs.get('cpuacct');
      return dir === undefined ? undefined : Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1000;
    } catch {
      return undefined;
    }
  }

  /** Swap available to sandboxes (bytes), 0 when the machine has none or cgroups cannot use it. */
  swapBytes(): number {
    try {
      const m = /^SwapFree:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
      const free = m === null ? 0 : Number(m[1]) * 1024;
      if (free === 0) return 0;
      const parent = this.parents.get('memory');
      if (parent === undefined) return 0;
      // v1 needs swap accounting (memsw) to push one group out; v2 has memory.swap.max and memory.reclaim
      if (this.mode === 'v1' && !existsSync(join(parent, 'memory.memsw.limit_in_bytes'))) return 0;
      if (this.mode === 'v2' && !existsSync(join(parent, 'memory.swap.max'))) return 0;
      return free;
    } catch {
      return 0;
    }
  }

  /**
   * Push a (frozen) group's memory out to swap: v2 asks the kernel to reclaim
   * it (memory.reclaim); v1 shrinks its limit so the kernel swaps it out
   * (memory.limit_in_bytes, with memsw allowing the swap), restored by swapIn.
   */
  swapOut(h: CgroupHandle, bytes: number): boolean {
    const dir = h.dirs.get('memory');
    if (dir === undefined) return false;
    try {
      if (this.mode === 'v2') writeFileSync(join(dir, 'memory.reclaim'), String(Math.floor(bytes)));
      else writeFileSync(join(dir, 'memory.limit_in_bytes'), String(16 * 1024 * 1024));
      return true;
    } catch (e) {
      this.warnOnce(e, 'could not push a sandbox out to swap');
      return false;
    }
  }

  /** Undo swapOut's limit (v1); pages come back as they are touched. */
  swapIn(h: CgroupHandle, limitBytes: number): void {
    const dir = h.dirs.get('memory');
    if (dir === undefined || this.mode === 'v2') return;
    try {
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(Math.floor(limitBytes)));
    } catch (e) {
      this.warnOnce(e, 'could not restore a sandbox\'s memory limit after swapping it in');
    }
  }

  /** Processes (host pids) in the group. */
  pids(h: CgroupHandle): number[] {
    const f = h.procsFiles[0];
    if (f === undefined) return [];
    try {
      return readFileSync(f, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map(Number);
    } catch {
      return [];
    }
  }

  /** OOM kills the kernel made to keep all this worker's sandboxes within their limit together. */
  totalOomKills(): number {
    const parent = this.parents.get('memory');
    return parent === undefined ? 0 : this.oomKills({ name: '', dirs: new Map([['memory', parent]]), procsFiles: [] });
  }

  /** Whether the kernel OOM-killed a process of the group (v2 memory.events, v1 memory.oom_control). */
  oomKills(h: CgroupHandle): number {
    const dir = h.dirs.get('memory');
    if (dir === undefined) return 0;
    try {
      const text = readFileSync(join(dir, this.mode === 'v2' ? 'memory.events' : 'memory.oom_control'), 'utf8');
      const m = /^oom_kill (\d+)$/m.exec(text);
      return m === null ? 0 : Number(m[1]);
    } catch {
      return 0;
    }
  }

  private warnOnce(e: unknown, msg: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn({ err: e }, `cgroups: ${msg} (further failures are not logged)`);
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function tryRmdir(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** This process's v1 group path per controller, from /proc/self/cgroup. */
function ownV1Paths(): Map<string, string> {
  const out = new Map<string, string>();
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const [, ctrls, path] = line.split(':');
      if (ctrls === undefined || path === undefined) continue;
      for (const c of ctrls.split(',')) if (c !== '') out.set(c, path);
    }
  } catch {
    // not Linux: nothing to nest under
  }
  return out;
}

/** A new v1 cpuset group starts empty: give it its parent's cpus and memory nodes. */
function inheritCpuset(parent: string, dir: string): void {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const cur = readFileSync(join(dir, f), 'utf8').trim();
    if (cur === '') writeFileSync(join(dir, f), readFileSync(join(parent, f), 'utf8').trim());
  }
}
