import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Path of a compiled sibling script that runs as its own process (a runner or
 * shim). From compiled code it sits next to the caller; when the caller runs
 * from TypeScript sources (tests), the compiled copy lives under dist/.
 */
export function compiledSibling(name: string, callerUrl: string): string {
  const next = fileURLToPath(new URL(`./${name}`, callerUrl));
  if (existsSync(next)) return next;
  const fromDist = next.replace(/([\\/])src([\\/])/, '$1dist$1src$2');
  if (existsSync(fromDist)) return fromDist;
  throw new Error(`${name} is not built; run \`npm run build\` first (looked at ${next} and ${fromDist})`);
}
