import { z } from 'zod';
import { BatonError } from './errors.js';
import { parseDuration } from './duration.js';

/**
 * The function definition as users write it (baton.yaml, or the JSON body of
 * PUT /v1/namespaces/{ns}/functions/{fn}), and its compiled form with defaults
 * applied and durations in milliseconds.
 */
export const FUNCTION_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NAMESPACE_NAME = FUNCTION_NAME;

const duration = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  try {
    parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message.replace(/^duration: /, '') });
  }
});

export const scaleSchema = z
  .object({
    min: z.number().int().min(0).max(10_000).default(0),
    max: z.number().int().min(1).max(100_000).default(100),
    targetConcurrency: z.number().positive().max(10_000).optional(),
    keepAlive: duration.default('60s'),
    stableWindow: duration.optional(),
    panicWindow: duration.optional(),
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
    timeout: duration.default('30s'),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.runtime === 'node' && f.handler === undefined) {
      ctx.addIssue({ code: 'custom', path: ['handler'], message: 'runtime "node" needs a handler (path of a JS module with a default fetch handler)' });
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
  if (f.handler !== undefined) spec.handler = f.handler;
  if (f.command !== undefined) spec.command = f.command;
  return spec;
}
