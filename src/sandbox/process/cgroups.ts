import { accessSync, constants, existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/logger.js';

export type CgroupMode = 'v2' | 'v1' | 'none';

/**
 * Best-effort memory accounting: each sandbox process goes into its own
 * `baton/<sandboxId>` memory cgroup (v2 unified hierarchy, else the v1 memory
 * controller). What is unavailable is logged once at start; a failure never
 * fails a sandbox.
 */
export class Cgroups {
  readonly mode: CgroupMode;
  private readonly root: string | undefined;
  private warned = false;

  constructor(
    private readonly log: Logger,
    base = '/sys/fs/cgroup',
  ) {
    const v2 = join(base, 'cgroup.controllers');
    const v1 = join(base, 'memory');
    if (existsSync(v2) && writable(base)) {
      this.mode = 'v2';
      this.root = join(base, 'baton');
    } else if (existsSync(v1) && writable(v1)) {
      this.mode = 'v1';
      this.root = join(v1, 'baton');
    } else {
      this.mode = 'none';
    }
    if (this.root !== undefined) {
      try {
        mkdirSync(this.root, { recursive: true });
      } catch (e) {
        this.log.warn({ err: e, root: this.root }, 'cgroups: cannot create the baton cgroup; sandbox memory accounting is off');
        this.mode = 'none';
        this.root = undefined;
      }
    }
    if (this.mode === 'none') {
      this.log.warn('cgroups: neither a writable cgroup v2 hierarchy nor a v1 memory controller is available; sandbox memory accounting and freezing are off');
    } else {
      this.log.info({ mode: this.mode, root: this.root }, `cgroups ${this.mode}: sandboxes get their own memory cgroup; freezing and swap control need a later version`);
    }
  }

  place(pid: number, sandboxId: string): void {
    if (this.root === undefined) return;
    try {
      const dir = join(this.root, sandboxId);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    } catch (e) {
      if (!this.warned) {
        this.warned = true;
        this.log.warn({ err: e }, 'cgroups: could not place a sandbox in its cgroup (further failures are not logged)');
      }
    }
  }

  remove(sandboxId: string): void {
    if (this.root === undefined) return;
    try {
      rmdirSync(join(this.root, sandboxId));
    } catch {
      // still has processes or never created: nothing to do
    }
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
