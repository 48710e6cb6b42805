import { spawnSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { link, mkdir, readdir, copyFile, rm } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Logger } from '../../common/logger.js';
import type { CgroupHandle, CgroupLimits, Cgroups } from './cgroups.js';
import { ProcessControl } from './control.js';

export interface IsolationOptions {
  /** 'auto' (default): full isolation when the worker runs as root and the tools exist; 'off': none. */
  mode?: 'auto' | 'off';
  /** First uid of the range reserved for this worker's sandboxes (default: derived from the node id). */
  uidBase?: number;
  /** How many uids (default 1024): also the most sandboxes this worker runs at once. */
  uidCount?: number;
  /** Size of each sandbox's scratch tmpfs in MB (default 256; counted in its memory). */
  scratchMb?: number;
  /** Per-sandbox pids limit (default 512). */
  pidsMax?: number;
  /** Extra host directories to hide from sandboxes even in the fallback mode (e.g. the control plane's data dir). */
  hide?: string[];
}

/** What one sandbox process tree gets: its uid, its directories, its cgroup. */
export interface Slot {
  readonly id: string;
  readonly uid: number;
  /** Host directory of the slot: `code/` (filled at load), `root/` (jail mount point), `tmp/` (fallback scratch). */
  readonly dir: string;
  /** Host directory the function's code is linked into. */
  readonly hostCodeDir: string;
  /** The code directory and scratch directory as the sandbox sees them. */
  readonly codeDir: string;
  readonly scratchDir: string;
  readonly cgroup: CgroupHandle | undefined;
}

const JAIL_CODE = '/code';
const JAIL_SCRATCH = '/tmp';
const JAIL_BATON = '/baton';
/** The compiled scripts a sandbox runs, with the modules they import: bound read-only at JAIL_BATON. */
const RUNNER_SCRIPTS = ['node-runner.js', 'runner-logs.js', 'line-splitter.js', 'http-shim.js'];

/**
 * Runs as PID 1 of the sandbox's new PID, mount, IPC and UTS namespaces, as
 * root of the host, before anything of the function is known: builds a root
 * on a tmpfs from read-only binds of the system directories, the function's
 * code directory (empty now, filled by the worker at load through the bind),
 * a private /tmp, a fresh /proc that shows only this sandbox's processes and a
 * minimal /dev; then chroots and drops to the sandbox's uid with no
 * capabilities and no_new_privs. Nothing of the worker's state dir, the
 * control plane's data or other sandboxes exists inside.
 * Arguments: root code uid scratchMb bindCount bind… -- command…
 */
const SETUP = String.raw`
set -eu
R=$1 CODE=$2 U=$3 SCRATCH=$4 NB=$5; shift 5
ro() { mount --bind "$1" "$2"; mount -o remount,bind,ro,nosuid,nodev "$2"; }
mount -t tmpfs -o mode=0755,nosuid,nodev,size=4m baton-root "$R"
for d in usr bin sbin lib lib32 lib64 libx32 etc; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d"
  elif [ -d "/$d" ]; then mkdir "$R/$d"; ro "/$d" "$R/$d"; fi
done
i=0
while [ "$i" -lt "$NB" ]; do
  src=$1; dst=$2; shift 2; i=$((i + 1))
  if [ -e "$R$dst" ]; then continue; fi
  if [ -d "$src" ]; then mkdir -p "$R$dst"; else mkdir -p "$(dirname "$R$dst")"; : > "$R$dst"; fi
  ro "$src" "$R$dst"
done
printf '{"type":"module"}\n' > "$R/baton/package.json"
mkdir "$R/code"; ro "$CODE" "$R/code"
mkdir "$R/tmp"; mount -t tmpfs -o "mode=0700,uid=$U,gid=$U,nosuid,nodev,size=$SCRATCH" baton-scratch "$R/tmp"
mkdir "$R/proc"; mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mkdir "$R/dev"; mount -t tmpfs -o mode=0755,nosuid,size=64k baton-dev "$R/dev"
for n in null zero full random urandom; do : > "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -o remount,ro,nosuid,nodev baton-root "$R"
[ "$1" = "--" ] && shift
exec chroot "$R" /usr/bin/setpriv --reuid="$U" --regid="$U" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all --pdeathsig=SIGKILL -- "$@"
`.trim();

/** Runs on the host, as root: joins the cgroups first, so nothing the sandbox forks escapes them. */
const ENTER = String.raw`
set -eu
N=$1; shift
i=0
while [ "$i" -lt "$N" ]; do echo $$ > "$1"; shift; i=$((i + 1)); done
exec "$@"
`.trim();

function which(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** 32-bit FNV-1a, to spread the default uid ranges of different workers. */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Sandbox isolation for the process runtimes. As root with util-linux's
 * unshare and setpriv (present on every common Linux server), each sandbox is
 * a process tree in its own PID, mount, IPC and UTS namespaces, chrooted into
 * a root built for it, running as its own unprivileged uid from a small range
 * reserved for this worker, inside its own cgroup (memory and pids limits).
 * Stem cells are started this way before a function is known, so isolation
 * adds nothing to a cold start but linking the code into the slot.
 * Without root (or without those tools) sandboxes run as the worker's user
 * with a private scratch directory only; the worker says so once at start.
 */
export class Jail {
  readonly enabled: boolean;
  /** Why isolation is off, when it is. */
  readonly offReasons: string[] = [];
  private readonly freeUids: number[] = [];
  private readonly uidBase: number;
  private readonly uidCount: number;
  private nextSlot = 0;
  private readonly unshare: string | undefined;
  private readonly binds: [string, string][] = [];
  private readonly slotsDir: string;

  constructor(
    private readonly log: Logger,
    private readonly cgroups: Cgroups,
    private readonly opts: {
      stateDir: string;
      nodeId: string;
      /** Host directory of the runner and shim scripts (bound read-only at /baton). */
      scriptsDir: string;
      limits: CgroupLimits;
      isolation?: IsolationOptions;
    },
  ) {
    const iso = opts.isolation ?? {};
    this.uidCount = iso.uidCount ?? 1024;
    this.uidBase = iso.uidBase ?? 200_000 + (fnv(opts.nodeId) % 1000) * this.uidCount;
    if (!Number.isInteger(this.uidBase) || this.uidBase < 1000 || !Number.isInteger(this.uidCount) || this.uidCount < 1 || this.uidBase + this.uidCount > 2 ** 31) {
      throw new RangeError(`isolation uid range ${this.uidBase}+${this.uidCount}: expected integers with base ≥ 1000 and end < 2^31`);
    }
    for (let i = this.uidCount - 1; i >= 0; i--) this.freeUids.push(this.uidBase + i);
    this.slotsDir = join(opts.stateDir, 'sandboxes');
    // What a killed predecessor left: its sandboxes died with it (their IPC channels closed).
    rmSync(this.slotsDir, { recursive: true, force: true });
    mkdirSync(this.slotsDir, { recursive: true, mode: 0o700 });
    // The state dir holds the node identity and every tenant's bundles: owner only.
    for (const d of [opts.stateDir, this.slotsDir]) {
      try {
        chmodSync(d, 0o700);
      } catch (e) {
        log.warn({ err: e, dir: d }, 'cannot make the worker state dir private (owner only); other local users may read bundles');
      }
    }

    this.unshare = which('unshare');
    const isRoot = process.getuid?.() === 0;
    if (iso.mode === 'off') this.offReasons.push('isolation turned off by configuration');
    if (!isRoot) this.offReasons.push(`the worker runs as uid ${process.getuid?.() ?? '?'}, not root`);
    if (this.unshare === undefined) this.offReasons.push('unshare (util-linux) is not on the PATH');
    if (!existsSync('/usr/bin/setpriv')) this.offReasons.push('setpriv (util-linux) is not at /usr/bin/setpriv');
    if (which('chroot') === undefined) this.offReasons.push('chroot (coreutils) is not on the PATH');
    if (this.offReasons.length === 0) {
      const probe = spawnSync(this.unshare as string, ['--pid', '--mount', '--ipc', '--uts', '--fork', '--propagation', 'private', 'true'], { timeout: 5000 });
      if (probe.status !== 0) this.offReasons.push(`unshare cannot create pid/mount namespaces here (${probe.stderr.toString().trim() || `exit ${probe.status}`})`);
    }
    this.enabled = this.offReasons.length === 0;
    this.collectBinds(opts.scriptsDir);
    if (this.enabled) {
      log.info({ uids: `${this.uidBase}-${this.uidBase + this.uidCount - 1}`, cgroups: cgroups.mode }, 'sandbox isolation on: own uid, pid/mount/ipc/uts namespaces, private root with read-only code, private /tmp and /proc');
    } else {
      log.warn(
        { reasons: this.offReasons },
        'sandbox isolation OFF: sandboxes run as the worker\'s own user, see the worker\'s processes and files, and can write their code directory; only a private scratch directory and a scrubbed environment remain. Run the worker as root with util-linux installed for isolation.',
      );
    }
  }

  /** Host paths bound read-only inside the jail at the same place: node's install prefix, and the runner scripts at /baton. */
  private collectBinds(scriptsDir: string): void {
    const nodeBin = realpathSync(process.execPath);
    const prefix = dirname(dirname(nodeBin));
    if (!['/usr', '/bin', '/sbin', '/lib'].some((p) => nodeBin.startsWith(p + sep))) this.binds.push([prefix, prefix]);
    if (process.execPath !== nodeBin) this.binds.push([nodeBin, process.execPath]);
    for (const f of RUNNER_SCRIPTS) this.binds.push([join(scriptsDir, f), `${JAIL_BATON}/${f}`]);
    // DNS: resolv.conf may point outside /etc (e.g. into /run)
    try {
      if (lstatSync('/etc/resolv.conf').isSymbolicLink()) {
        const target = resolve('/etc', readlinkSync('/etc/resolv.conf'));
        if (!target.startsWith('/etc/') && existsSync(target)) this.binds.push([dirname(target), dirname(target)]);
      }
    } catch {
      // no resolv.conf: no DNS inside either
    }
  }

  /** Path of a runner script as the sandbox process sees it. */
  script(name: 'node-runner.js' | 'http-shim.js'): string {
    return this.enabled ? `${JAIL_BATON}/${name}` : join(this.opts.scriptsDir, name);
  }

  /** The node binary as the sandbox process sees it. */
  get node(): string {
    return process.execPath;
  }

  /** Reserve a uid, directories and a cgroup for a new sandbox process tree. */
  allocate(): Slot {
    const uid = this.freeUids.pop();
    if (uid === undefined) throw new Error(`all ${this.uidCount} sandbox uids of this worker are in use; raise --sandbox-uids`);
    const id = `s${(this.nextSlot++).toString(36)}-${process.pid.toString(36)}`;
    const dir = join(this.slotsDir, id);
    const hostCodeDir = join(dir, 'code');
    mkdirSync(hostCodeDir, { recursive: true, mode: 0o755 });
    mkdirSync(join(dir, 'root'), { mode: 0o755 });
    let scratchDir = JAIL_SCRATCH;
    if (!this.enabled) {
      scratchDir = join(dir, 'tmp');
      mkdirSync(scratchDir, { mode: 0o700 });
    }
    const cgroup = this.cgroups.create(id, this.opts.limits);
    return { id, uid, dir, hostCodeDir, codeDir: this.enabled ? JAIL_CODE : hostCodeDir, scratchDir, cgroup };
  }

  /** Freezing, pinning and measuring the process tree in this slot. */
  control(slot: Slot, pid: () => number | undefined): ProcessControl {
    return new ProcessControl(this.cgroups, slot, pid, this.opts.limits.memoryBytes ?? 2 ** 50);
  }

  /** Give the slot back once its processes are gone: directories, cgroup, uid. */
  async release(slot: Slot): Promise<void> {
    await rm(slot.dir, { recursive: true, force: true }).catch((e: unknown) => this.log.warn({ err: e, dir: slot.dir }, 'could not remove a sandbox directory'));
    if (slot.cgroup !== undefined) await this.cgroups.remove(slot.cgroup);
    this.freeUids.push(slot.uid);
  }

  /**
   * Start `argv` (argv[0] is the program as seen inside) in the slot. stdio
   * follows Node's spawn; the process is its own process group so terminal
   * signals reach the worker, not the sandboxes. Returns the host process:
   * killing it (any signal) kills the whole sandbox.
   */
  spawn(slot: Slot, argv: string[], env: Record<string, string>, stdio: StdioOptions, serialization: 'json' | 'advanced' = 'json'): ChildProcess {
    const procs = slot.cgroup?.procsFiles ?? [];
    if (!this.enabled) {
      const [cmd, ...args] = argv;
      return spawn('/bin/sh', ['-c', ENTER, 'baton-enter', String(procs.length), ...procs, cmd as string, ...args], { env, stdio, detached: true, serialization, cwd: slot.scratchDir });
    }
    const bindArgs = this.binds.flatMap(([src, dst]) => [src, dst]);
    const inner = [
      this.unshare as string,
      '--pid', '--mount', '--ipc', '--uts', '--fork', '--kill-child', '--propagation', 'private',
      '/bin/sh', '-c', SETUP, 'baton-jail',
      join(slot.dir, 'root'), slot.hostCodeDir, String(slot.uid), `${this.opts.isolation?.scratchMb ?? 256}m`, String(this.binds.length), ...bindArgs,
      '--', ...argv,
    ];
    return spawn('/bin/sh', ['-c', ENTER, 'baton-enter', String(procs.length), ...procs, ...inner], { env, stdio, detached: true, serialization, cwd: '/' });
  }

  /**
   * Make a function's code visible in the slot, read-only to the sandbox:
   * hard links to the worker's unpacked bundle (root-owned, not writable by the
   * sandbox's uid), no copying of data.
   */
  async linkCode(bundleDir: string, slot: Slot): Promise<void> {
    await linkTree(bundleDir, slot.hostCodeDir);
  }
}

async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o755 });
  for (const e of await readdir(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isDirectory()) await linkTree(src, dst);
    else if (e.isFile()) {
      await link(src, dst).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code === 'EXDEV' || err.code === 'EPERM') await copyFile(src, dst);
        else throw err;
      });
    }
  }
}
