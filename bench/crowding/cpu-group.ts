import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CrowdingError } from './crowding-error.js';

const MOUNT = '/sys/fs/cgroup/cpu';

/** This process's group in the cgroup v1 cpu hierarchy ('/' at the root). */
function ownCpuPath(): string {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, controllers = '', path = '/'] = line.split(':');
    if (controllers.split(',').includes('cpu')) return path;
  }
  return '/';
}

function removeTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still has tasks: left for its owner (a worker removes its own groups when it stops)
  }
}

/**
 * Runs this benchmark, and every process it starts from now on (control
 * plane, workers and — because a v1 worker nests its sandbox groups under its
 * own — their sandboxes), in a CPU cgroup of its own with the given weight
 * (cpu.shares; a normal process group has 1024). On a machine shared with
 * other work this keeps that work from taking most of the cores the
 * experiment is about; the machine is still shared. cgroup v1 only, as root.
 */
export class OwnCpuGroup {
  private constructor(
    private readonly dir: string,
    private readonly parent: string,
  ) {}

  static enter(shares: number): OwnCpuGroup {
    if (!existsSync(join(MOUNT, 'cpu.shares'))) {
      throw new CrowdingError(`--cpu-shares needs the cgroup v1 cpu controller at ${MOUNT} (with cgroup v2 a worker keeps its sandboxes under /sys/fs/cgroup/baton, outside any group this benchmark could give a weight)`);
    }
    const parent = join(MOUNT, ownCpuPath());
    const dir = join(parent, `baton-bench-${process.pid}`);
    try {
      // mkdir on cgroupfs creates the group with its control files
      mkdirSync(dir);
      writeFileSync(join(dir, 'cpu.shares'), String(shares));
      writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
    } catch (e) {
      rmdirSafe(dir);
      throw new CrowdingError(`--cpu-shares: cannot put this benchmark in a CPU cgroup of its own under ${parent} (${(e as Error).message}); it needs root`);
    }
    return new OwnCpuGroup(dir, parent);
  }

  /** Move back out and remove the group (once the children have stopped). */
  leave(): void {
    try {
      writeFileSync(join(this.parent, 'cgroup.procs'), String(process.pid));
    } catch {
      // we are exiting anyway
    }
    removeTree(this.dir);
  }
}

function rmdirSafe(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not there
  }
}
