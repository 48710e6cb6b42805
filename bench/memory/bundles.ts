import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packDirectory } from '../../src/common/bundle.js';

/** The handler of examples/hello, as a function's code. */
const HELLO = `export default {
  async fetch(request, env) {
    const name = (await request.text()).trim() || 'world';
    console.log(\`greeting \${name}\`);
    return new Response(\`\${env.GREETING ?? 'hello'}, \${name}!\\n\`, { headers: { 'content-type': 'text/plain' } });
  },
};
`;

/**
 * Bundles as `baton deploy` makes them (packDirectory of a function's
 * directory, base64 in the request body), one distinct bundle per function:
 * functions with different code have different bundle hashes, and each hash a
 * worker fetched is remembered on its node record (code locality), so sharing
 * one bundle would hide that cost.
 */
export class BundleMaker {
  private dir: string | undefined;

  async next(n: number): Promise<string> {
    const dir = (this.dir ??= mkdtempSync(join(tmpdir(), 'baton-memory-')));
    writeFileSync(join(dir, 'index.js'), `// function ${n}\n${HELLO}`);
    return Buffer.from(await packDirectory(dir)).toString('base64');
  }

  close(): void {
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
