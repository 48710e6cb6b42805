import { describe, expect, it } from 'vitest';
import { cpuBetween, mergeCpu, type CpuSnapshot } from './cpu.js';

describe('cpu accounting', () => {
  const snap = (atMs: number, busy: number, cp: number): CpuSnapshot => ({
    atMs,
    machine: { busy, idle: 0, steal: 0 },
    groups: { controlPlane: cp, workers: 0, client: 0, criticalSandboxes: 0, batchSandboxes: 0 },
  });

  it('turns ticks into average cores busy and attributes the rest to others', () => {
    // 2 s: the machine used 300 ticks (1.5 cores), the control plane 100 (0.5)
    expect(cpuBetween(snap(0, 0, 0), snap(2000, 300, 100))).toMatchObject({ seconds: 2, machineBusy: 1.5, controlPlane: 0.5, others: 1 });
  });

  it('averages windows by their length', () => {
    const a = cpuBetween(snap(0, 0, 0), snap(1000, 100, 0));
    const b = cpuBetween(snap(0, 0, 0), snap(3000, 600, 300));
    expect(mergeCpu([a, b])).toMatchObject({ seconds: 4, machineBusy: 1.75, controlPlane: 0.75 });
  });
});
