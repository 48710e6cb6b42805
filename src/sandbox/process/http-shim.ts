/**
 * Supervises one `http` sandbox command: starts it in its own process group
 * and kills the whole group when the worker goes away (IPC disconnect) or this
 * supervisor is told to stop, so no server outlives its worker, even after
 * `kill -9`. Inside a jail it is the namespace's PID 1 as well, so its death
 * takes every process of the sandbox with it.
 */
import { spawn } from 'node:child_process';

const [, , cwd, ...argv] = process.argv;
const [command, ...args] = argv;
if (cwd === undefined || command === undefined) {
  process.stderr.write('usage: http-shim <cwd> <command> [args…]\n');
  process.exit(64);
}

function tell(m: { t: 'exit'; code: number | null; signal: string | null; stderr: string }): void {
  process.send?.(m, undefined, undefined, () => undefined);
}

const child = spawn(command, args, { cwd, env: process.env, stdio: ['ignore', 'inherit', 'pipe'], detached: true });
let stderrTail = '';
child.stderr.on('data', (d: Buffer) => {
  process.stderr.write(d);
  stderrTail = (stderrTail + d.toString()).slice(-2000);
});

function killGroup(signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

child.on('error', (e) => {
  tell({ t: 'exit', code: 127, signal: null, stderr: `cannot start ${command}: ${e.message}` });
  process.exit(0);
});
child.on('exit', (code, signal) => {
  killGroup();
  tell({ t: 'exit', code, signal, stderr: stderrTail });
  process.exit(0);
});
process.on('disconnect', () => {
  killGroup();
  process.exit(0);
});
process.on('error', () => {
  // IPC trouble: the disconnect handler cleans up
});
const stop = (): void => {
  killGroup('SIGTERM');
  setTimeout(() => {
    killGroup();
    process.exit(0);
  }, 2000).unref();
};
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, stop);
