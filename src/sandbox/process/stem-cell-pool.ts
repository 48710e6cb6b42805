import { fork, type ChildProcess } from 'node:child_process';
import { compiledSibling } from '../../common/compiled-path.js';
import type { Logger } from '../../common/logger.js';
import { baseEnv } from '../runtime.js';
import type { FromRunner } from './runner-protocol.js';

export const RUNNER_PATH = compiledSibling('node-runner.js', import.meta.url);

/**
 * Pre-started generic node runners (seed 002 §4.2): a cold start takes one that
 * is already up and only loads the function's module into it. The pool refills
 * in the background.
 */
export class StemCellPool {
  private readonly idle: ChildProcess[] = [];
  private starting = 0;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly log: Logger,
    private readonly runnerPath = RUNNER_PATH,
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
  async take(): Promise<ChildProcess> {
    let child = this.idle.pop();
    while (child !== undefined && (child.exitCode !== null || child.signalCode !== null || !child.connected)) child = this.idle.pop();
    if (child === undefined) {
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
    return child;
  }

  private refillTimer: NodeJS.Timeout | undefined;

  private refill(): void {
    while (!this.closed && this.idle.length + this.starting < this.size) {
      this.starting++;
      this.spawn().then(
        (c) => {
          this.starting--;
          if (this.closed) c.kill('SIGKILL');
          else this.idle.push(c);
        },
        (e: unknown) => {
          this.starting--;
          this.log.error({ err: e }, 'could not start a stem-cell runner');
        },
      );
    }
  }

  private spawn(): Promise<ChildProcess> {
    return new Promise((resolve, reject) => {
      const child = fork(this.runnerPath, [], {
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: baseEnv(),
        execArgv: [],
      });
      const onMessage = (m: FromRunner): void => {
        if (m.t !== 'up') return;
        cleanup();
        resolve(child);
      };
      const onExit = (code: number | null, signal: string | null): void => {
        cleanup();
        reject(new Error(`runner exited during start (code ${code}, signal ${signal})`));
      };
      const cleanup = (): void => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
    });
  }

  close(): void {
    this.closed = true;
    if (this.refillTimer !== undefined) clearTimeout(this.refillTimer);
    for (const c of this.idle.splice(0)) c.kill('SIGKILL');
  }
}
