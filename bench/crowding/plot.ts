import { lineChart, type Series } from '../../src/sim/svg-plot.js';
import type { LatencyBin } from './analysis.js';

export interface PlotPhase {
  label: string;
  /** Where the phase starts on the plot's time axis, s (phases are drawn back to back). */
  offsetS: number;
  durationS: number;
  bins: LatencyBin[];
  /** p99 over the whole phase, ms. */
  p99: number;
}

/**
 * The series of the crowding plot (seed 001's Figure 3, measured): critical
 * latency over time with the phases back to back — the median and the worst
 * call of each bin, and each phase's p99 as a dashed step.
 */
export function plotSeries(phases: readonly PlotPhase[], binS: number): { series: Series[]; marks: { x: number; label: string }[] } {
  const median: [number, number][] = [];
  const worst: [number, number][] = [];
  const p99: [number, number][] = [];
  for (const p of phases) {
    for (const b of p.bins) {
      median.push([b.x, b.p50]);
      worst.push([b.x, b.max]);
    }
    if (Number.isFinite(p.p99)) p99.push([p.offsetS, p.p99], [p.offsetS + p.durationS, p.p99]);
  }
  const per = `per ${binS} s`;
  return {
    series: [
      { name: `median, ${per}`, points: median },
      { name: `slowest, ${per}`, points: worst },
      { name: 'p99 of the phase', points: p99, dashed: true },
    ],
    marks: phases.map((p) => ({ x: p.offsetS, label: p.label })),
  };
}

export function crowdingSvg(title: string, phases: readonly PlotPhase[], binS: number): string {
  const { series, marks } = plotSeries(phases, binS);
  return lineChart({ title, xLabel: 'time, s (phase windows back to back, set-up left out)', yLabel: 'critical latency, ms', series, marks, logY: true });
}
