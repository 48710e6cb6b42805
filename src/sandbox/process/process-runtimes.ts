import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { compiledSibling } from '../../common/compiled-path.js';
import type { Logger } from '../../common/logger.js';
import type { SandboxLogSink } from '../log-sink.js';
import type { SandboxRuntime } from '../runtime.js';
import { Cgroups } from './cgroups.js';
import { HttpRuntime } from './http-runtime.js';
import { Jail, type IsolationOptions, type Slot } from './jail.js';
import { NodejsRuntime } from './node-runtime.js';
import { PidLedger } from './pid-ledger.js';

export type { IsolationOptions };

/** CPUs this process may run on (its affinity as the kernel lists it). */
function allowedCpus(): number[] {
  try {
    const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m === null) return [];
    const out: number[] = [];
    for (const part of (m[1] as string).trim().split(',')) {
      const [a, b] = part.split('-').map(Number);
      if (a === undefined || Number.isNaN(a)) continue;
      for (let c = a; c <= (b ?? a); c++) out.push(c);
    }
    return out;
  } catch {
    return [];
  }
}

export interface ProcessRuntimeOptions {
  log: Logger;
  stateDir: string;
  nodeId: string;
  /** Memory this worker offers: also each sandbox's hard memory limit. */
  memoryMb: number;
  stemCells?: number;
  isolation?: IsolationOptions;
  /** How long an http function may take to listen on $PORT. */
  httpStartupTimeoutMs?: number;
  /** Where the sandboxes' stdout/stderr lines go (default: dropped). */
  logs?: SandboxLogSink;
}

/**
 * The `process` runtimes of a worker (node, http) with what they share: the
 * cgroups, the jail that isolates each sandbox, and the ledger of sandbox pids
 * that lets a restarted worker kill what a crashed one left behind.
 */
export interface ProcessRuntimes {
  node: SandboxRuntime;
  http: SandboxRuntime;
  /** CPU ids sandboxes may be pinned to (empty when there is no cpuset to pin with). */
  cpus: number[];
  /** Swap available to sandboxes, MB (0: none, or cgroups cannot direct it). */
  swapMb(): number;
  /** Memory of all sandboxes together (their parent cgroup), MB, when measurable. */
  totalMemoryMb(): number | undefined;
  /** Kernel OOM kills among all sandboxes together so far. */
  totalOomKills(): number;
  /** After every sandbox was stopped: wait for their slots to be released, then remove the worker's own cgroups. */
  close(): Promise<void>;
}

export function createProcessRuntimes(o: ProcessRuntimeOptions): ProcessRuntimes {
  const cgroups = new Cgroups(o.log, { nodeId: o.nodeId });
  const pids = new PidLedger(o.stateDir);
  const reaped = pids.reap();
  if (reaped > 0) o.log.warn({ reaped }, 'killed sandbox processes left behind by a previous run of this worker');
  void cgroups.removeStale().then((n) => {
    if (n > 0) o.log.info({ groups: n }, 'removed sandbox cgroups left behind by a previous run of this worker');
  });
  const scriptsDir = dirname(compiledSibling('node-runner.js', import.meta.url));
  const jail = new Jail(o.log, cgroups, {
    stateDir: o.stateDir,
    nodeId: o.nodeId,
    scriptsDir,
    limits: { memoryBytes: o.memoryMb * 1024 * 1024, pids: o.isolation?.pidsMax ?? 512 },
    ...(o.isolation === undefined ? {} : { isolation: o.isolation }),
  });
  const log = o.log;
  const live = new Set<Promise<void>>();
  /** Every sandbox process: in the ledger while it lives; its slot is released when it exits. */
  const track = (child: ChildProcess, slot: Slot): void => {
    pids.add(child.pid, true);
    let exited!: () => void;
    const gone = new Promise<void>((r) => (exited = r));
    live.add(gone);
    child.on('error', (e) => log.warn({ err: e, slot: slot.id }, 'sandbox process error'));
    child.once('exit', () => {
      pids.remove(child.pid);
      void jail.release(slot).finally(() => {
        live.delete(gone);
        exited();
      });
    });
  };
  const cpus = cgroups.has('cpuset') ? allowedCpus() : [];
  if (cgroups.has('memory') && !cgroups.limitTotalMemory(o.memoryMb * 1024 * 1024)) log.warn('could not bound all sandboxes together by --memory; the memory manager alone keeps them within it');
  const swapLog = { done: false };
  return {
    cpus,
    swapMb: () => {
      const mb = Math.floor(cgroups.swapBytes() / (1024 * 1024));
      if (!swapLog.done) {
        swapLog.done = true;
        log.info({ swapMb: mb, cgroups: cgroups.mode }, mb > 0 ? 'memory manager: swap available for low-class sandboxes' : 'memory manager: no swap usable by sandboxes here; under pressure idle sandboxes go first, then the lowest class is killed');
      }
      return mb;
    },
    totalOomKills: () => cgroups.totalOomKills(),
    totalMemoryMb: () => {
      const b = cgroups.totalMemoryBytes();
      return b === undefined ? undefined : b / (1024 * 1024);
    },
    node: new NodejsRuntime(o.log, jail, (cell) => track(cell.child, cell.slot), o.stemCells === undefined ? {} : { stemCells: o.stemCells }, o.logs),
    http: new HttpRuntime(jail, track, o.httpStartupTimeoutMs === undefined ? {} : { startupTimeoutMs: o.httpStartupTimeoutMs }, o.logs),
    async close() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...live]), new Promise((r) => (timer = setTimeout(r, 5000)))]);
      if (timer !== undefined) clearTimeout(timer);
      if (live.size > 0) log.warn({ sandboxes: live.size }, 'sandbox processes still exiting at stop; their cgroups may be left behind');
      cgroups.close();
    },
  };
}
