import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/cluster.js';

/** Runs the compiled guard in a child process: the test runner has its own handlers for these events. */
function runGuarded(body: string): { status: number | null; lines: Record<string, unknown>[]; stderr: string } {
  const guard = pathToFileURL(join(REPO, 'dist/src/common/process-guard.js')).href;
  const logger = pathToFileURL(join(REPO, 'dist/src/common/logger.js')).href;
  const script = `
    const { installProcessGuard, processFaults } = await import(${JSON.stringify(guard)});
    const { createRootLogger } = await import(${JSON.stringify(logger)});
    const log = createRootLogger({ level: 'info', name: 'guard-test', destination: 1 });
    installProcessGuard(log, 'control plane');
    installProcessGuard(log, 'control plane'); // twice is a no-op: one log line per fault
    ${body}
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, lines, stderr: r.stderr };
}

describe('process guard', () => {
  it('logs an uncaught exception and an unhandled rejection with the error under err, counts them, and keeps running', () => {
    const r = runGuarded(`
      setTimeout(() => { throw new Error('boom from a timer'); }, 0);
      setTimeout(() => { void Promise.reject(new TypeError('nobody handled me')); }, 10);
      setTimeout(() => { log.info({ faults: processFaults() }, 'still running'); log.flush(); }, 100);
    `);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const faults = r.lines.filter((l) => l['level'] === 50);
    expect(faults).toHaveLength(2);
    const [ex, rej] = faults as [Record<string, { message?: string; type?: string }>, Record<string, { message?: string; type?: string }>];
    expect(ex['msg']).toMatch(/^uncaughtException in the control plane/);
    expect(ex['err']?.message).toBe('boom from a timer');
    expect(ex['origin']).toBe('uncaughtException');
    expect(rej['msg']).toMatch(/^unhandledRejection in the control plane/);
    expect(rej['err']).toMatchObject({ type: 'TypeError', message: 'nobody handled me' });
    const last = r.lines.at(-1) as { msg: string; faults: unknown };
    expect(last.msg).toBe('still running');
    expect(last.faults).toEqual({ uncaughtExceptions: 1, unhandledRejections: 1 });
  });

  it('a non-Error thrown value is logged too', () => {
    const r = runGuarded(`
      setTimeout(() => { throw 'a bare string'; }, 0);
      setTimeout(() => log.flush(), 50);
    `);
    expect(r.status).toBe(0);
    const fault = r.lines.find((l) => l['level'] === 50);
    expect(fault?.['err']).toBe('a bare string');
  });
});
