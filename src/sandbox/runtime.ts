import type { WireError } from '../common/errors.js';
import type { SandboxSpec } from '../protocol/messages.js';

export interface SandboxRequest {
  callId: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
  timeoutMs: number;
  priceClass: string;
  /** Largest response body; a larger one fails the call with 502 response_too_large. */
  maxResponseBytes: number;
}

export interface SandboxResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
  execMs: number;
  error?: WireError;
}

/**
 * One running sandbox. `invoke` never throws: a handler error is a 500 with
 * error code function_error, an overrun a 504 (timeout), a crash a 502
 * (sandbox_failed).
 */
export interface Sandbox {
  readonly id: string;
  readonly spec: SandboxSpec;
  /** Host pid of the sandbox's top process (killing it kills the sandbox). */
  readonly pid: number | undefined;
  invoke(req: SandboxRequest): Promise<SandboxResponse>;
  stop(): Promise<void>;
  /** Called once if the sandbox dies on its own (not after stop()). */
  onExit(cb: (reason: string) => void): void;
}

export interface SandboxRuntime {
  readonly name: string;
  create(id: string, spec: SandboxSpec, codeDir: string | undefined): Promise<Sandbox>;
  close(): Promise<void>;
}

const ENCODER = new TextEncoder();

export function errorResponse(status: number, code: WireError['code'], message: string, execMs = 0): SandboxResponse {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: ENCODER.encode(JSON.stringify({ error: { code, message } })),
    execMs,
    error: { code, message },
  };
}

/** The environment a sandbox process starts with: a few basics, never the worker's secrets. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'LANG', 'TZ', 'NODE_OPTIONS_BATON']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  env['PATH'] ??= '/usr/local/bin:/usr/bin:/bin';
  return env;
}
