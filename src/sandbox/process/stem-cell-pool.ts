import type { ChildProcess } from 'node:child_process';
import type { Logger } from '../../common/logger.js';
import { baseEnv } from '../runtime.js';
import type { ProcessControl } from './control.js';
import type { Jail, Slot } from './jail.js';
import { pipeLines } from './pipe-lines.js';
import type { FromRunner } from './runner-protocol.js';

/** A started generic runner in its own slot (uid, namespaces, cgroup), not yet any function's. */
export interface StemCell {
  child: ChildProcess;
  slot: Slot;
  control: ProcessControl;
  /**
   * Where the lines of its stdout/stderr pipes go: the worker's log while it
   * is a stem cell (only baton's own runner writes then), its sandbox's log
   * once it is one.
   */
  output: (stream: 'stdout' | 'stderr', line: string) => void;
}

/**
 * Pre-started generic node runners (seed 002 §4.2): a cold start takes one that
 * is already up — already inside its namespaces, under its own uid, in its
 * cgroup — and only loads the function's module into it. The pool refills in
 * the background.
 */
export class StemCellPool {
  private readonly idle: StemCell[] = [];
  private starting = 0;
  private closed = false;
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly size: number,
    private readonly log: Logger,
    private readonly jail: Jail,
    /** Called for every runner started, with a cleanup to run when it exits. */
    private readonly track: (cell: StemCell) => void,
    private readonly refillDelayMs = 50,
  ) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`stemCells must be a non-negative integer, got ${size}`);
    this.refill();
  }

  get available(): number {
    return this.idle.length;
  }

  /**
   * A started runner: from the pool when one is ready, else a fresh one. The
   * pool refills a little later, so booting the replacement (tens of ms of
   * CPU) does not compete with the cold start that just took a runner.
   */
  async take(): Promise<StemCell> {
    let cell = this.idle.pop();
    while (cell !== undefined && !alive(cell.child)) cell = this.idle.pop();
    if (cell === undefined) {
      this.refill();
      return this.spawn();
    }
    if (this.refillTimer === undefined) {
      this.refillTimer = setTimeout(() => {
        this.refillTimer = undefined;
        this.refill();
      }, this.refillDelayMs);
      this.refillTimer.unref();
    }
    return cell;
  }

  private refill(): void {
    while (!this.closed && this.idle.length + this.starting < this.size) {
      this.starting++;
      this.spawn().then(
        (c) => {
          this.starting--;
          if (this.closed) c.child.kill('SIGKILL');
          else this.idle.push(c);
        },
        (e: unknown) => {
          this.starting--;
          this.log.error({ err: e }, 'could not start a stem-cell runner');
        },
      );
    }
  }

  private spawn(): Promise<StemCell> {
    return new Promise((resolve, reject) => {
      let slot: Slot;
      try {
        slot = this.jail.allocate();
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      const env = { ...baseEnv(), TMPDIR: slot.scratchDir, HOME: slot.scratchDir };
      // stdout/stderr are piped to us, never inherited: a function's output is its log, not the worker's
      const child = this.jail.spawn(slot, [this.jail.node, this.jail.script('node-runner.js')], env, ['ignore', 'pipe', 'pipe', 'ipc'], 'advanced');
      const cell: StemCell = {
        child,
        slot,
        control: this.jail.control(slot, () => child.pid),
        output: (stream, line) => this.log.warn({ slot: slot.id, stream, line }, 'output of a stem-cell runner'),
      };
      pipeLines(child, (stream, line) => cell.output(stream, line));
      this.track(cell);
      const onMessage = (m: FromRunner): void => {
        if (m.t !== 'up') return;
        cleanup();
        resolve(cell);
      };
      const onExit = (code: number | null, signal: string | null): void => {
        cleanup();
        reject(new Error(`runner exited during start (code ${code}, signal ${signal})`));
      };
      const onError = (e: Error): void => {
        cleanup();
        child.kill('SIGKILL');
        reject(e);
      };
      const cleanup = (): void => {
        child.off('message', onMessage);
        child.off('exit', onExit);
        child.off('error', onError);
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.on('error', onError);
    });
  }

  close(): void {
    this.closed = true;
    if (this.refillTimer !== undefined) clearTimeout(this.refillTimer);
    for (const c of this.idle.splice(0)) c.child.kill('SIGKILL');
  }
}

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.connected;
}
