import { textTable, type BatchSummary, type CriticalSummary, type LatencyBin, type Part } from './analysis.js';
import type { CpuUse } from './cpu.js';
import type { SpinFunction } from './functions.js';
import type { CrowdingOptions, PhaseName } from './options.js';

/** What a crowding run reports: per phase, and as the table printed at the end. */

/** The goal of SPEC §10: critical p99 under flood at most this times its p99 alone, with classes on. */
export const GOAL_RATIO = 1.2;

export interface PhaseResult {
  name: PhaseName;
  label: string;
  classes: boolean;
  flood: boolean;
  durationS: number;
  /** Windows it was measured in (--rounds). */
  windows: number;
  critical: CriticalSummary;
  batch: BatchSummary | null;
  /** Average cores busy during the window, by whom. */
  cpu: CpuUse;
  /** Preemptions on the workers during the window: from the control plane's node view, and from calls' Server-Timing; null where not reported. */
  preemptions: { fromNodes: number | null; batchCallsPreempted: number | null };
  bins: LatencyBin[];
}

export interface CrowdingReport {
  benchmark: 'crowding';
  emulated: false;
  sandboxes: string;
  machine: Record<string, string | number>;
  loadAverageAtStart: number[];
  config: CrowdingOptions & { functions: SpinFunction[] };
  phases: PhaseResult[];
  ratios: { phase: string; baseline: string; ratio: number }[];
  goal: { ratio: number; met: boolean | null };
  /** Lines the workers logged at warn level or above (the first 20), and how many there were. */
  workerWarnings: { count: number; first: string[] };
}

export function formatReport(r: CrowdingReport): string {
  const head = ['phase', 'critical n', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'late', 'off-CPU p99 ms', 'batch ok/s', 'batch err', 'preempt', 'cp cores', 'busy cores', 'others', 'steal'];
  const rows = r.phases.map((p) => [
    p.label,
    p.critical.completed,
    p.critical.e2eMs.p50,
    p.critical.e2eMs.p99,
    p.critical.e2eMs.p999,
    p.critical.e2eMs.max,
    p.critical.errors,
    p.critical.late,
    p.critical.offCpuMs.p99,
    p.batch?.throughputPerSec ?? '-',
    p.batch?.errors ?? '-',
    p.preemptions.fromNodes ?? p.preemptions.batchCallsPreempted ?? 'n/a',
    p.cpu.controlPlane,
    p.cpu.machineBusy,
    p.cpu.others,
    p.cpu.steal,
  ]);
  const lines = [textTable(head, rows), '', 'where the slowest 1 % of critical calls spent their time (mean ms; p50 of all calls in brackets):'];
  const part = (p: PhaseResult, k: Part): string => `${p.critical.breakdown.slowest.meanMs[k]} (${p.critical.breakdown.p50[k]})`;
  lines.push(
    textTable(
      ['phase', 'calls', 'e2e', 'outside cp', 'in cp', 'cp↔runner', 'exec', 'exec off-CPU'],
      r.phases.map((p) => [p.label, p.critical.breakdown.slowest.calls, p.critical.breakdown.slowest.e2eMs, part(p, 'outside'), part(p, 'controlPlane'), part(p, 'transit'), part(p, 'exec'), part(p, 'offCpu')]),
    ),
    '',
  );
  const c = r.config;
  for (const q of r.ratios) {
    const p = r.phases.find((x) => x.name === q.phase);
    const verdict = q.phase === 'flood' ? ` (goal ≤ ${r.goal.ratio}: ${q.ratio <= r.goal.ratio ? 'met' : 'NOT met'})` : '';
    lines.push(`critical p99, ${p?.label ?? q.phase} / ${q.baseline}: ${q.ratio}×${verdict}`);
  }
  lines.push(
    '',
    `${c.workers} worker(s) × ${c.cores} cores; critical ${c.criticalRate}/s × ${c.criticalMs} ms CPU; batch ${c.batchInflight} in flight over ${c.batchMs.join('/')} ms functions; ${c.durationS} s per phase${c.rounds > 1 ? ` in ${c.rounds} alternating windows` : ''}${c.cpuShares === undefined ? '' : `; the whole experiment in its own CPU cgroup, cpu.shares ${c.cpuShares}`}.`,
    'late: sent in the window, answered after it closed (not in the percentiles). off-CPU: critical handler wall - CPU time during its spin.',
    'preempt: preemptions the workers report during the windows (a lower-class sandbox frozen for a higher-class call; batch calls of a flood can still be running as the next window opens); n/a when the workers do not report the count.',
    'cores: average cores busy during the windows; others: busy cores not used by this run (other processes on the machine).',
  );
  if (r.workerWarnings.count > 0) lines.push(`the workers logged ${r.workerWarnings.count} warning(s); first: ${r.workerWarnings.first[0] ?? ''}`);
  return lines.join('\n');
}
