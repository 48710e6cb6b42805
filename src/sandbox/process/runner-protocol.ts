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

export type FromRunner =
  | { t: 'up' }
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
