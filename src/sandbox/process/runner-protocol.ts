/** Messages between the worker and a node runner process (IPC, advanced serialization). */
export type ToRunner =
  | { t: 'load'; codeDir: string; handler: string; env: Record<string, string> }
  | { t: 'invoke'; id: number; method: string; path: string; headers: Record<string, string>; body: Uint8Array; callId: string; priceClass: string };

export type FromRunner =
  | { t: 'up' }
  | { t: 'ready'; initMs: number }
  | { t: 'loadError'; message: string }
  | { t: 'result'; id: number; status: number; headers: Record<string, string>; body: Uint8Array; execMs: number; error?: { code: 'function_error'; message: string } };
