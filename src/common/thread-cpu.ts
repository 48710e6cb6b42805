import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc counts CPU time in these ticks (100 on every mainstream architecture). */
const USER_HZ = 100;

/**
 * CPU time (user + system) the calling thread has used, seconds, from
 * /proc/thread-self/stat (Linux; 10 ms resolution): Node 20 has no per-thread
 * CPU clock (process.threadCpuUsage came later). Where /proc cannot be read,
 * the event loop's busy time (performance.eventLoopUtilization) stands in —
 * an upper bound, as it also counts time the thread was runnable but not
 * running. `exact` says which one it is.
 */
export function threadCpuSeconds(): { seconds: number; exact: boolean } {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    // fields after the command name (which is in parentheses and may hold spaces)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { seconds: (Number(f[11]) + Number(f[12])) / USER_HZ, exact: true };
  } catch {
    return { seconds: performance.eventLoopUtilization().active / 1000, exact: false };
  }
}
