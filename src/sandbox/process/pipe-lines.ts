import type { ChildProcess } from 'node:child_process';
import type { LogLine } from '../../protocol/messages.js';
import { LineSplitter } from './line-splitter.js';

/**
 * Read a sandbox process's stdout and stderr pipes as lines. What a function
 * writes there directly (not through the runner's capture: `fs.writeSync(1)`,
 * processes it starts, an http server's output) is its log too, never the
 * worker's own output. The last unfinished line is emitted when a pipe ends.
 */
export function pipeLines(child: ChildProcess, onLine: (stream: LogLine['stream'], line: string) => void): void {
  for (const stream of ['stdout', 'stderr'] as const) {
    const pipe = child[stream];
    if (pipe === null) continue;
    const splitter = new LineSplitter((line) => onLine(stream, line));
    pipe.on('data', (d: Buffer) => splitter.push(d));
    pipe.once('end', () => splitter.end());
    // a pipe error means the process is gone; 'exit' tells the sandbox so
    pipe.on('error', () => undefined);
  }
}
