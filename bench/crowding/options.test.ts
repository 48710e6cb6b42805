import { describe, expect, it } from 'vitest';
import { parseCrowdingArgs } from './options.js';

describe('parseCrowdingArgs', () => {
  it('defaults the cores to the machine and the flood to 4 calls per core', () => {
    const o = parseCrowdingArgs([], 2);
    expect(o).toMatchObject({ workers: 1, cores: 2, batchInflight: 8, durationS: 20, rounds: 1, phases: ['alone', 'flood', 'flood-no-classes'] });
    expect(parseCrowdingArgs(['--workers', '2', '--cores', '3'], 2)?.batchInflight).toBe(24);
    expect(parseCrowdingArgs(['--help'], 2)).toBeUndefined();
  });

  it('runs the phases with classes first, whatever order they were named in', () => {
    expect(parseCrowdingArgs(['--phases', 'flood-no-classes,alone-no-classes,alone'], 2)?.phases).toEqual(['alone', 'flood-no-classes', 'alone-no-classes']);
  });

  it('names the option that is wrong', () => {
    expect(() => parseCrowdingArgs(['--cores', '0'], 2)).toThrow(/--cores/);
    expect(() => parseCrowdingArgs(['--workers', '1.5'], 2)).toThrow(/--workers/);
    expect(() => parseCrowdingArgs(['--batch-ms', '50,x'], 2)).toThrow(/--batch-ms/);
    expect(() => parseCrowdingArgs(['--phases', 'alone,storm'], 2)).toThrow(/--phases: unknown phase "storm"/);
    expect(() => parseCrowdingArgs(['--phases', 'alone,alone'], 2)).toThrow(/named twice/);
    expect(() => parseCrowdingArgs(['--client-nice', '20'], 2)).toThrow(/--client-nice/);
    expect(() => parseCrowdingArgs(['--duration', '2', '--rounds', '4'], 2)).toThrow(/--rounds/);
    expect(() => parseCrowdingArgs(['--cpu-shares', '1'], 2)).toThrow(/--cpu-shares/);
    expect(() => parseCrowdingArgs(['--bogus'], 2)).toThrow();
  });
});
