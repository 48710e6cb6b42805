import { BatonError, type WireError } from '../common/errors.js';
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
  /** The call this one was made from (call chains), for the handler to see. */
  parentId?: string;
  /**
   * Makes a chain call on behalf of this call (`ctx.invoke` in a node
   * handler). Never rejects: every failure is an answer with an error.
   * Absent: this call cannot make chain calls.
   */
  chain?: (req: ChainRequest) => Promise<ChainResponse>;
}

/** A call to another function of the namespace, made from inside a running call. */
export interface ChainRequest {
  function: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
  /** Asked-for class; the call runs at least at its caller's class. */
  priceClass?: string;
}

/** The answer to a chain call: the callee's response, or the platform's error. */
export interface ChainResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
  /** The new call's id, when the control plane accepted it. */
  callId?: string;
  error?: WireError;
}

export interface SandboxResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
  execMs: number;
  /** CPU time of this call as the sandbox measured it (its share when calls overlap), µs. */
  cpuUs?: number;
  error?: WireError;
}

/**
 * What the worker's machine scheduler and memory manager may do to a running
 * sandbox. Implementations do what their platform allows; the worker logs at
 * start what is unavailable.
 */
export interface SandboxControl {
  /** Stop every process of the sandbox where it is (cgroup freezer, else SIGSTOP). */
  freeze(): void;
  thaw(): void;
  /** Pin to one CPU (cpuset), or undefined for all of the worker's CPUs (`allCpus`). */
  pin(cpu: number | undefined, allCpus: string): void;
  /** Resident memory in bytes, or undefined when it cannot be measured. */
  memoryBytes(): number | undefined;
  /** CPU time used so far, µs, or undefined when not measured this way. */
  cpuMicros(): number | undefined;
  /** The class the sandbox runs at now (CPU weight, kill order under memory pressure). */
  setRank(rank: number, ranks: number): void;
  /** Push its memory out to swap; false when this machine cannot. */
  swapOut(): boolean;
  swapIn(): void;
  /** How many of its processes the kernel OOM-killed so far. */
  oomKills(): number;
}

/** For sandboxes that are only records: nothing to freeze, pin or measure. */
export const NO_CONTROL: SandboxControl = {
  freeze: () => undefined,
  thaw: () => undefined,
  pin: () => undefined,
  memoryBytes: () => undefined,
  cpuMicros: () => undefined,
  setRank: () => undefined,
  swapOut: () => false,
  swapIn: () => undefined,
  oomKills: () => 0,
};

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
  readonly control: SandboxControl;
  invoke(req: SandboxRequest): Promise<SandboxResponse>;
  /** Preempted by a higher class: its processes stop and its calls' timeouts stop counting. */
  freeze(): void;
  thaw(): void;
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

/** A chain call answered by the worker itself with an error (status from the error code). */
export function chainError(code: WireError['code'], message: string): ChainResponse {
  const err = new BatonError(code, message);
  const error = err.toWire();
  return { status: err.status, headers: { 'content-type': 'application/json' }, body: ENCODER.encode(JSON.stringify({ error })), error };
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
