/** Messages between the worker and a node runner process (IPC, advanced serialization). */
export type ToRunner =
  | { t: 'load'; codeDir: string; scratchDir: string; handler: string; env: Record<string, string> }
  | {
      t: 'invoke';
      id: number;
      method: string;
      path: string;
      headers: Record<string, string>;
      body: Uint8Array;
      callId: string;
      priceClass: string;
      /** A bigger response body fails the call with response_too_large instead of crossing the IPC channel. */
      maxResponseBytes: number;
    };

/** One line a function wrote to process.stdout/stderr (console.*), tagged with the call it was written from. */
export interface RunnerLogLine {
  /** Epoch ms when it was written. */
  ts: number;
  stream: 'stdout' | 'stderr';
  line: string;
  /** Absent for lines written outside any running call (module load, timers that outlive their call). */
  callId?: string;
}

export type FromRunner =
  | { t: 'up' }
  /** Log lines, batched; sent before the result of a call that wrote them. `dropped`: lines lost because the function wrote faster than they could be sent. */
  | { t: 'logs'; lines: RunnerLogLine[]; dropped?: number }
  | { t: 'ready'; initMs: number }
  | { t: 'loadError'; message: string }
  | {
      t: 'result';
      id: number;
      status: number;
      headers: Record<string, string>;
      body: Uint8Array;
      execMs: number;
      /** This call's share of the runner's CPU time while it ran, µs. */
      cpuUs: number;
      error?: { code: 'function_error' | 'response_too_large'; message: string };
    };
