import { describe, expect, it } from 'vitest';
import { BatonError } from './errors.js';
import { DURATION_BOUNDS, compileFunctionSpec, formatMs } from './function-spec.js';

const node = { runtime: 'node', handler: 'index.js' } as const;

/** The message compileFunctionSpec refuses `input` with. */
function refusal(input: unknown): string {
  try {
    compileFunctionSpec(input, 'spec');
  } catch (e) {
    expect(e).toBeInstanceOf(BatonError);
    expect((e as BatonError).code).toBe('invalid_manifest');
    return (e as BatonError).message;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('function spec bounds', () => {
  it('formats bounds the way users write durations', () => {
    expect(formatMs(0)).toBe('0ms');
    expect(formatMs(1)).toBe('1ms');
    expect(formatMs(900_000)).toBe('15m');
    expect(formatMs(86_400_000)).toBe('24h');
    expect(formatMs(90_500)).toBe('1m30s500ms');
  });

  it('timeout must lie in [1ms, 15m]', () => {
    expect(refusal({ ...node, timeout: 0 })).toBe('spec.timeout: must be between 1ms and 15m, got 0 (0 ms)');
    expect(refusal({ ...node, timeout: '0s' })).toContain('spec.timeout: must be between 1ms and 15m');
    expect(refusal({ ...node, timeout: '1000h' })).toBe('spec.timeout: must be between 1ms and 15m, got "1000h" (3600000000 ms)');
    expect(refusal({ ...node, timeout: '15m1ms' })).toContain('spec.timeout');
    expect(refusal({ ...node, timeout: 2 ** 31 })).toContain('spec.timeout');
    expect(compileFunctionSpec({ ...node, timeout: 1 }).timeoutMs).toBe(1);
    expect(compileFunctionSpec({ ...node, timeout: '15m' }).timeoutMs).toBe(DURATION_BOUNDS.timeout.max);
  });

  it('timeouts are whole milliseconds (the worker protocol carries integers)', () => {
    expect(refusal({ ...node, timeout: '1.5ms' })).toBe('spec.timeout: must be a whole number of milliseconds, got "1.5ms" (1.5 ms)');
    expect(refusal({ ...node, timeout: 2.5 })).toContain('whole number of milliseconds');
    expect(compileFunctionSpec({ ...node, timeout: '1.5s' }).timeoutMs).toBe(1500);
  });

  it('keepAlive lies in [0, 24h]; stable and panic windows in [100ms, 1h]', () => {
    expect(compileFunctionSpec({ ...node, scale: { keepAlive: 0 } }).scale.keepAliveMs).toBe(0);
    expect(refusal({ ...node, scale: { keepAlive: '25h' } })).toContain('spec.scale.keepAlive: must be between 0ms and 24h');
    expect(refusal({ ...node, scale: { keepAlive: '1000h' } })).toContain('spec.scale.keepAlive');
    expect(refusal({ ...node, scale: { stableWindow: 0 } })).toContain('spec.scale.stableWindow: must be between 100ms and 1h');
    expect(refusal({ ...node, scale: { stableWindow: '2h' } })).toContain('spec.scale.stableWindow');
    expect(refusal({ ...node, scale: { panicWindow: '50ms' } })).toContain('spec.scale.panicWindow: must be between 100ms and 1h');
    expect(refusal({ ...node, scale: { panicWindow: '999h' } })).toContain('spec.scale.panicWindow');
    const ok = compileFunctionSpec({ ...node, scale: { keepAlive: '24h', stableWindow: '1h', panicWindow: '100ms' } }).scale;
    expect([ok.keepAliveMs, ok.stableWindowMs, ok.panicWindowMs]).toEqual([86_400_000, 3_600_000, 100]);
  });

  it('derived defaults stay inside the bounds at either end of keepAlive', () => {
    for (const keepAlive of [0, '24h']) {
      const s = compileFunctionSpec({ ...node, scale: { keepAlive } }).scale;
      expect(s.stableWindowMs).toBeGreaterThanOrEqual(DURATION_BOUNDS.stableWindow.min);
      expect(s.stableWindowMs).toBeLessThanOrEqual(DURATION_BOUNDS.stableWindow.max);
      expect(s.panicWindowMs).toBeGreaterThanOrEqual(DURATION_BOUNDS.panicWindow.min);
    }
  });

  it('reports several bad durations at once, each by its path', () => {
    const m = refusal({ ...node, timeout: 0, scale: { keepAlive: '99h', panicWindow: 'soon' } });
    expect(m).toContain('spec.timeout');
    expect(m).toContain('spec.scale.keepAlive');
    expect(m).toContain('spec.scale.panicWindow: cannot read "soon"');
  });

  it('targetConcurrency lies in [0.01, 10000]', () => {
    expect(refusal({ ...node, scale: { targetConcurrency: 0.001 } })).toContain('spec.scale.targetConcurrency');
    expect(refusal({ ...node, scale: { targetConcurrency: 0 } })).toContain('spec.scale.targetConcurrency');
    expect(refusal({ ...node, scale: { targetConcurrency: 10_001 } })).toContain('spec.scale.targetConcurrency');
    expect(compileFunctionSpec({ ...node, scale: { targetConcurrency: 0.5 } }).scale.targetConcurrency).toBe(0.5);
  });

  it('a handler must be a path inside the bundle', () => {
    expect(refusal({ runtime: 'node', handler: '../outside.js' })).toContain('spec.handler: "../outside.js" is not a path inside the bundle');
    expect(refusal({ runtime: 'node', handler: '/srv/index.js' })).toContain('spec.handler');
    expect(compileFunctionSpec({ runtime: 'node', handler: './index.js' }).handler).toBe('./index.js');
  });
});
