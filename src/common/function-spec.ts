import { z } from 'zod';
import { handlerBundlePath } from './bundle.js';
import { BatonError } from './errors.js';
import { parseDuration } from './duration.js';

/**
 * The function definition as users write it (baton.yaml, or the JSON body of
 * PUT /v1/namespaces/{ns}/functions/{fn}), and its compiled form with defaults
 * applied and durations in milliseconds.
 */
export const FUNCTION_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NAMESPACE_NAME = FUNCTION_NAME;

/**
 * Bounds of the durations in a function spec, in milliseconds. They keep every
 * value inside what a Node timer can hold (setTimeout fires at once for
 * anything above 2^31-1 ms, about 24.8 days) and inside what makes sense for a
 * function: the worker protocol needs a whole, positive number of ms for a
 * call's timeout.
 */
export const DURATION_BOUNDS = {
  timeout: { min: 1, max: 15 * 60_000 },
  keepAlive: { min: 0, max: 24 * 3_600_000 },
  stableWindow: { min: 100, max: 3_600_000 },
  panicWindow: { min: 100, max: 3_600_000 },
} as const satisfies Record<string, { min: number; max: number }>;

/** `90000` → `1m30s`, `1500` → `1s500ms`, `0` → `0ms`. */
export function formatMs(ms: number): string {
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}ms`);
  return parts.join('');
}

/** A duration (`'30s'`, `'1m30s'`, or a number of ms) between `min` and `max` ms, in whole milliseconds. */
function duration(bounds: { min: number; max: number }) {
  const range = `between ${formatMs(bounds.min)} and ${formatMs(bounds.max)}`;
  return z
    .union([z.string(), z.number()])
    .superRefine((v, ctx) => {
      let ms: number;
      try {
        ms = parseDuration(v);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message.replace(/^duration: /, '') });
        return;
      }
      if (ms < bounds.min || ms > bounds.max) {
        ctx.addIssue({ code: 'custom', message: `must be ${range}, got ${JSON.stringify(v)} (${ms} ms)` });
      } else if (!Number.isInteger(ms)) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number of milliseconds, got ${JSON.stringify(v)} (${ms} ms)` });
      }
    })
    .describe(`a duration such as 500ms, 30s, 5m or 1h (a number is milliseconds), ${range}`);
}

export const scaleSchema = z
  .object({
    min: z.number().int().min(0).max(10_000).default(0),
    max: z.number().int().min(1).max(100_000).default(100),
    // Below 0.01 a single in-flight call would ask for 100+ sandboxes (Knative uses the same floor).
    targetConcurrency: z.number().min(0.01).max(10_000).optional(),
    keepAlive: duration(DURATION_BOUNDS.keepAlive).default('60s'),
    stableWindow: duration(DURATION_BOUNDS.stableWindow).optional(),
    panicWindow: duration(DURATION_BOUNDS.panicWindow).optional(),
  })
  .strict()
  .refine((s) => s.min <= s.max, { message: 'scale.min must not exceed scale.max', path: ['min'] });

export const functionSpecSchema = z
  .object({
    runtime: z.enum(['node', 'http']),
    handler: z.string().min(1).optional(),
    command: z.array(z.string().min(1)).min(1).optional(),
    priceClass: z.string().min(1).default('standard'),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _'), z.string()).default({}),
    concurrency: z.number().int().min(1).max(1000).default(1),
    scale: scaleSchema.default({ min: 0, max: 100, keepAlive: '60s' }),
    timeout: duration(DURATION_BOUNDS.timeout).default('30s'),
    /** Async invocations: how many times a call may run, and which failures are retried. */
    async: z
      .object({
        maxAttempts: z.number().int().min(1).max(10).default(3),
        retry: z.enum(['not-started', 'errors']).default('not-started'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.runtime === 'node' && f.handler === undefined) {
      ctx.addIssue({ code: 'custom', path: ['handler'], message: 'runtime "node" needs a handler (path of a JS module with a default fetch handler)' });
    }
    if (f.handler !== undefined && handlerBundlePath(f.handler) === undefined) {
      ctx.addIssue({ code: 'custom', path: ['handler'], message: `${JSON.stringify(f.handler)} is not a path inside the bundle (write it relative to the function's directory, e.g. index.js)` });
    }
    if (f.runtime === 'http' && f.command === undefined) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: 'runtime "http" needs a command (argv that serves HTTP on $PORT)' });
    }
  });

export interface FunctionSpec {
  runtime: 'node' | 'http';
  handler?: string;
  command?: string[];
  priceClass: string;
  env: Record<string, string>;
  concurrency: number;
  scale: {
    min: number;
    max: number;
    targetConcurrency: number;
    keepAliveMs: number;
    stableWindowMs: number;
    panicWindowMs: number;
  };
  timeoutMs: number;
  /**
   * Async invocations: attempts per accepted call (default 3); `not-started`
   * retries only failures before the handler ran, `errors` any failure.
   */
  async?: { maxAttempts: number; retry: 'not-started' | 'errors' };
}

/** Format zod issues as `path: message` lines, prefixed by where the input came from. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], prefix: string): string {
  return issues
    .map((i) => {
      const path = [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.');
      return `${path || '(root)'}: ${i.message}`;
    })
    .join('; ');
}

/** Validate user input and return the compiled spec. Throws BatonError('invalid_manifest') naming the field. */
export function compileFunctionSpec(input: unknown, where = ''): FunctionSpec {
  const parsed = functionSpecSchema.safeParse(input);
  if (!parsed.success) {
    throw new BatonError('invalid_manifest', formatIssues(parsed.error.issues, where), {
      details: { issues: parsed.error.issues.map((i) => ({ path: [where, ...i.path.map(String)].filter(Boolean).join('.'), message: i.message })) },
    });
  }
  const f = parsed.data;
  const keepAliveMs = parseDuration(f.scale.keepAlive);
  const spec: FunctionSpec = {
    runtime: f.runtime,
    priceClass: f.priceClass,
    env: f.env,
    concurrency: f.concurrency,
    scale: {
      min: f.scale.min,
      max: f.scale.max,
      targetConcurrency: f.scale.targetConcurrency ?? f.concurrency,
      keepAliveMs,
      stableWindowMs: f.scale.stableWindow === undefined ? Math.min(60_000, Math.max(keepAliveMs, 1000)) : parseDuration(f.scale.stableWindow),
      panicWindowMs: f.scale.panicWindow === undefined ? 6_000 : parseDuration(f.scale.panicWindow),
    },
    timeoutMs: parseDuration(f.timeout),
  };
  if (f.async !== undefined) spec.async = { maxAttempts: f.async.maxAttempts, retry: f.async.retry };
  if (f.handler !== undefined) spec.handler = f.handler;
  if (f.command !== undefined) spec.command = f.command;
  return spec;
}
