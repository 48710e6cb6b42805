import { z } from 'zod';
import { functionSpecSchema } from '../common/function-spec.js';

/** The published JSON Schema of baton.yaml (schema/baton.schema.json), generated from the validating zod schema. */
export function manifestJsonSchema(): Record<string, unknown> {
  const fn = z.object({ ...functionSpecSchema.shape, path: z.string().optional().describe('directory to bundle, relative to the manifest') }).strict();
  const manifest = z
    .object({
      version: z.literal(1),
      namespace: z.string().optional(),
      functions: z.record(z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/), fn),
    })
    .strict();
  return { title: 'baton.yaml', ...z.toJSONSchema(manifest, { io: 'input', unrepresentable: 'any' }) };
}
