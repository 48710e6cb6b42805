import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

interface Entry {
  pid: number;
  start: string;
  /** The pid leads a process group (http servers): kill the whole group. */
  group: boolean;
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 22 (starttime), counted after the ")" that ends the command name
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Records the pids of sandbox processes (with their start times, so a reused pid
 * is never mistaken for ours) in the state dir. At start, a worker kills what a
 * previous incarnation left behind — the second line of defence after runners
 * and shims exiting with their IPC channel.
 */
export class PidLedger {
  private readonly path: string;
  private readonly entries = new Map<number, Entry>();

  constructor(stateDir: string) {
    this.path = join(stateDir, 'pids.json');
  }

  /** Kill leftovers from a previous run. Returns how many were reaped. */
  reap(): number {
    let old: Entry[] = [];
    try {
      old = JSON.parse(readFileSync(this.path, 'utf8')) as Entry[];
    } catch {
      return 0;
    }
    let n = 0;
    for (const e of old) {
      if (startTime(e.pid) !== e.start) continue;
      try {
        process.kill(e.group ? -e.pid : e.pid, 'SIGKILL');
        n++;
      } catch {
        // already gone
      }
    }
    this.flush();
    return n;
  }

  add(pid: number | undefined, group = false): void {
    if (pid === undefined) return;
    const start = startTime(pid);
    if (start === undefined) return;
    this.entries.set(pid, { pid, start, group });
    this.flush();
  }

  remove(pid: number | undefined): void {
    if (pid !== undefined && this.entries.delete(pid)) this.flush();
  }

  private flush(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.entries.values()]));
    renameSync(tmp, this.path);
  }
}
