import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { BatonError } from '../common/errors.js';
import { FUNCTION_NAME, compileFunctionSpec } from '../common/function-spec.js';

export interface ManifestFunction {
  name: string;
  /** Directory uploaded as the bundle. */
  dir: string;
  /** The spec as written, without `path`. */
  spec: Record<string, unknown>;
}

export interface Manifest {
  file: string;
  namespace: string | undefined;
  functions: ManifestFunction[];
}

const topLevel = z
  .object({
    version: z.literal(1, { message: 'expected version: 1' }),
    namespace: z.string().optional(),
    functions: z.record(z.string(), z.record(z.string(), z.unknown())).refine((f) => Object.keys(f).length > 0, 'at least one function is required'),
  })
  .strict();

/**
 * Read and validate a baton.yaml (YAML or JSON). Every error names the file,
 * the field path and, where the YAML says, the line.
 */
export function loadManifest(file: string): Manifest {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BatonError('invalid_manifest', `${file}: cannot read: ${(e as Error).message}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new BatonError('invalid_manifest', `${file}: ${e?.message.split('\n')[0] ?? 'invalid YAML'}`);
  }
  const raw: unknown = doc.toJS();
  const lineOf = (path: (string | number)[]): string => {
    for (let n = path.length; n > 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number] } | undefined;
      const at = node?.range?.[0];
      if (at !== undefined) return ` (line ${lines.linePos(at).line})`;
    }
    return '';
  };
  const top = topLevel.safeParse(raw);
  if (!top.success) {
    const i = top.error.issues[0];
    const path = i?.path.map(String) ?? [];
    throw new BatonError('invalid_manifest', `${file}: ${path.join('.') || '(root)'}: ${i?.message ?? 'invalid'}${lineOf(path)}`);
  }
  const base = dirname(resolve(file));
  const functions: ManifestFunction[] = [];
  for (const [name, fn] of Object.entries(top.data.functions)) {
    if (!FUNCTION_NAME.test(name)) {
      throw new BatonError('invalid_manifest', `${file}: functions.${name}: invalid function name; use 1-63 lowercase letters, digits and '-'${lineOf(['functions', name])}`);
    }
    const { path, ...spec } = fn;
    if (path !== undefined && typeof path !== 'string') throw new BatonError('invalid_manifest', `${file}: functions.${name}.path: expected a string${lineOf(['functions', name, 'path'])}`);
    try {
      compileFunctionSpec(spec, `functions.${name}`);
    } catch (e) {
      const issue = (e as BatonError).details?.['issues'] as { path: string; message: string }[] | undefined;
      const first = issue?.[0];
      const where = first === undefined ? '' : lineOf(first.path.split('.'));
      throw new BatonError('invalid_manifest', `${file}: ${(e as Error).message}${where}`);
    }
    functions.push({ name, dir: resolve(base, path ?? '.'), spec });
  }
  return { file, namespace: top.data.namespace, functions };
}
