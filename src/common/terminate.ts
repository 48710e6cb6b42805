import type { ChildProcess } from 'node:child_process';

/** SIGTERM a child, SIGKILL it if it has not exited after `graceMs`; resolves once it has exited. */
export function terminate(child: ChildProcess, graceMs = 2000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}
