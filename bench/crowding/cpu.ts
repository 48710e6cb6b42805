import { readFileSync } from 'node:fs';
import { processTree } from '../../src/sandbox/process/control.js';

/** Linux reports process and machine CPU time in USER_HZ ticks (100 per second). */
const TICKS_PER_SECOND = 100;

export interface CpuGroups {
  controlPlane: number[];
  /** Worker daemons themselves, without their sandboxes. */
  workers: number[];
  /** This load generator. */
  client: number[];
  /** Sandbox processes (each with its descendants). */
  criticalSandboxes: number[];
  batchSandboxes: number[];
}

export interface CpuSnapshot {
  atMs: number;
  machine: { busy: number; idle: number; steal: number };
  groups: Record<keyof CpuGroups, number>;
}

/** Average cores busy over a window, by whom; "others" is what the machine did beyond what we could attribute. */
export interface CpuUse {
  seconds: number;
  machineBusy: number;
  steal: number;
  controlPlane: number;
  workers: number;
  client: number;
  criticalSandboxes: number;
  batchSandboxes: number;
  others: number;
}

function machineTicks(): CpuSnapshot['machine'] {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number): number => f[i] ?? 0;
  return { busy: at(0) + at(1) + at(2) + at(5) + at(6), idle: at(3) + at(4), steal: at(7) };
}

function ownTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

function treeTicks(pids: readonly number[]): number {
  let sum = 0;
  for (const root of pids) for (const p of processTree(root)) sum += ownTicks(p);
  return sum;
}

export function snapshotCpu(g: CpuGroups, atMs: number): CpuSnapshot {
  const own = (pids: readonly number[]): number => pids.reduce((s, p) => s + ownTicks(p), 0);
  return {
    atMs,
    machine: machineTicks(),
    groups: { controlPlane: own(g.controlPlane), workers: own(g.workers), client: own(g.client), criticalSandboxes: treeTicks(g.criticalSandboxes), batchSandboxes: treeTicks(g.batchSandboxes) },
  };
}

const r2 = (n: number): number => Math.round(n * 100) / 100;

/** Cores busy on average between two snapshots (ticks are per CPU, summed over CPUs). */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const seconds = (b.atMs - a.atMs) / 1000;
  const cores = (ticks: number): number => (seconds > 0 ? ticks / TICKS_PER_SECOND / seconds : Number.NaN);
  const d = (k: keyof CpuGroups): number => cores(b.groups[k] - a.groups[k]);
  const use = {
    seconds: r2(seconds),
    machineBusy: cores(b.machine.busy - a.machine.busy),
    steal: cores(b.machine.steal - a.machine.steal),
    controlPlane: d('controlPlane'),
    workers: d('workers'),
    client: d('client'),
    criticalSandboxes: d('criticalSandboxes'),
    batchSandboxes: d('batchSandboxes'),
  };
  const ours = use.controlPlane + use.workers + use.client + use.criticalSandboxes + use.batchSandboxes;
  return {
    seconds: use.seconds,
    machineBusy: r2(use.machineBusy),
    steal: r2(use.steal),
    controlPlane: r2(use.controlPlane),
    workers: r2(use.workers),
    client: r2(use.client),
    criticalSandboxes: r2(use.criticalSandboxes),
    batchSandboxes: r2(use.batchSandboxes),
    others: r2(Math.max(0, use.machineBusy - ours)),
  };
}

/** The average over several windows, weighted by their length. */
export function mergeCpu(uses: readonly CpuUse[]): CpuUse {
  const total = uses.reduce((s, u) => s + u.seconds, 0);
  const avg = (k: Exclude<keyof CpuUse, 'seconds'>): number => r2(uses.reduce((s, u) => s + u[k] * u.seconds, 0) / (total || 1));
  return {
    seconds: r2(total),
    machineBusy: avg('machineBusy'),
    steal: avg('steal'),
    controlPlane: avg('controlPlane'),
    workers: avg('workers'),
    client: avg('client'),
    criticalSandboxes: avg('criticalSandboxes'),
    batchSandboxes: avg('batchSandboxes'),
    others: avg('others'),
  };
}
