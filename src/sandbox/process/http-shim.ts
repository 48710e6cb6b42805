/**
 * Supervises one `http` sandbox command: starts it in its own process group
 * and kills the whole group when the worker goes away (IPC disconnect), so no
 * server outlives its worker, even after `kill -9`.
 */
import { spawn } from 'node:child_process';

const [, , cwd, ...argv] = process.argv;
const [command, ...args] = argv;
if (cwd === undefined || command === undefined) {
  process.stderr.write('usage: http-shim <cwd> <command> [args…]\n');
  process.exit(64);
}

const child = spawn(command, args, { cwd, env: process.env, stdio: ['ignore', 'inherit', 'pipe'], detached: true });
let stderrTail = '';
child.stderr.on('data', (d: Buffer) => {
  process.stderr.write(d);
  stderrTail = (stderrTail + d.toString()).slice(-2000);
});

function killGroup(): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

child.on('error', (e) => {
  process.send?.({ t: 'exit', code: 127, signal: null, stderr: `cannot start ${command}: ${e.message}` });
  process.exit(0);
});
child.on('spawn', () => process.send?.({ t: 'spawned', pid: child.pid }));
child.on('exit', (code, signal) => {
  killGroup();
  process.send?.({ t: 'exit', code, signal, stderr: stderrTail });
  process.exit(0);
});
process.on('disconnect', () => {
  killGroup();
  process.exit(0);
});
process.on('SIGTERM', () => {
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
  setTimeout(() => {
    killGroup();
    process.exit(0);
  }, 2000).unref();
});
