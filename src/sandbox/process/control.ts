import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { SandboxControl } from '../runtime.js';
import type { Cgroups } from './cgroups.js';
import type { Slot } from './jail.js';

/** A process and all its descendants (host pids), from /proc's children lists. */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const walk = (pid: number, depth: number): void => {
    out.push(pid);
    if (depth > 16) return;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ')) if (c !== '' && c !== '\n') walk(Number(c), depth + 1);
      } catch {
        // gone
      }
    }
  };
  walk(root, 0);
  return out;
}

const PAGE = 4096;
const TICK_US = 10_000; // USER_HZ 100: /proc times are in 10 ms ticks

/**
 * Control of one process sandbox by the machine scheduler and the memory
 * manager: its cgroup where there is one (freezer, cpuset, cpu weight,
 * memory and CPU accounting, swap), else signals to its process tree and
 * /proc readings. What a mode cannot do is a no-op here; the worker logged
 * it once at start.
 */
export class ProcessControl implements SandboxControl {
  private frozen = false;

  constructor(
    private readonly cgroups: Cgroups,
    private readonly slot: Slot,
    private readonly pid: () => number | undefined,
    private readonly memoryLimitBytes: number,
  ) {}

  private tree(): number[] {
    const pid = this.pid();
    return pid === undefined ? [] : processTree(pid);
  }

  freeze(): void {
    if (this.frozen) return;
    this.frozen = true;
    const cg = this.slot.cgroup;
    if (cg !== undefined && this.cgroups.freeze(cg, true)) return;
    for (const p of this.tree()) signal(p, 'SIGSTOP');
  }

  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    const cg = this.slot.cgroup;
    if (cg !== undefined && this.cgroups.freeze(cg, false)) return;
    for (const p of this.tree()) signal(p, 'SIGCONT');
  }

  pin(cpu: number | undefined, allCpus: string): void {
    const cg = this.slot.cgroup;
    if (cg !== undefined) this.cgroups.pin(cg, cpu === undefined ? allCpus : String(cpu));
  }

  memoryBytes(): number | undefined {
    const cg = this.slot.cgroup;
    const fromCgroup = cg === undefined ? undefined : this.cgroups.memoryBytes(cg);
    if (fromCgroup !== undefined) return fromCgroup;
    let rss = 0;
    for (const p of this.tree()) {
      try {
        rss += Number(readFileSync(`/proc/${p}/statm`, 'utf8').split(' ')[1]) * PAGE;
      } catch {
        // gone
      }
    }
    return rss;
  }

  cpuMicros(): number | undefined {
    const cg = this.slot.cgroup;
    const fromCgroup = cg === undefined ? undefined : this.cgroups.cpuMicros(cg);
    if (fromCgroup !== undefined) return fromCgroup;
    return undefined;
  }

  /** Coarse fallback (10 ms ticks) for a process tree without cgroup accounting. */
  cpuMicrosFromProc(): number {
    let ticks = 0;
    for (const p of this.tree()) {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(f[11]) + Number(f[12]);
      } catch {
        // gone
      }
    }
    return ticks * TICK_US;
  }

  /**
   * Class of the sandbox: its CPU weight (lower classes yield to higher ones
   * and to the worker itself) and, should the kernel ever have to kill in its
   * memory backstop, lower classes first (oom_score_adj).
   */
  setRank(rank: number, ranks: number): void {
    const cg = this.slot.cgroup;
    const top = Math.max(1, ranks - 1);
    if (cg !== undefined) this.cgroups.weight(cg, 10 + Math.round((rank / top) * 490));
    const adj = String(Math.round(900 - (rank / top) * 800));
    const pids = cg !== undefined && cg.procsFiles.length > 0 ? this.cgroups.pids(cg) : this.tree();
    for (const p of pids) {
      try {
        writeFileSync(`/proc/${p}/oom_score_adj`, adj);
      } catch {
        // gone, or not permitted (unprivileged worker)
      }
    }
  }

  swapOut(): boolean {
    const cg = this.slot.cgroup;
    if (cg === undefined) return false;
    return this.cgroups.swapOut(cg, this.memoryBytes() ?? 0);
  }

  swapIn(): void {
    const cg = this.slot.cgroup;
    if (cg !== undefined) this.cgroups.swapIn(cg, this.memoryLimitBytes);
  }

  oomKills(): number {
    const cg = this.slot.cgroup;
    return cg === undefined ? 0 : this.cgroups.oomKills(cg);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}
