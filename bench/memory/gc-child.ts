import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MemoryConfig, MemoryFigures } from './measure.js';

/** The compiled child entry: next to this module when it runs from dist/, else under dist/ (tests run the TypeScript sources). */
function childScript(): string {
  const here = fileURLToPath(new URL('./child.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = here.replace(/([\\/])bench([\\/])memory([\\/])child\.js$/, '$1dist$1bench$2memory$3child.js');
  if (existsSync(built)) return built;
  throw new Error(`bench/memory/child.js is not built; run \`npx tsc -p tsconfig.build.json\` first (looked at ${here} and ${built})`);
}

/**
 * V8 flags of the measuring process. --expose-gc: the retained heap can only
 * be read after full collections, which need `gc()`. The other two change no
 * object's size, only what a heap figure counts besides live objects: every
 * full collection compacts (else the free fragments too small to reuse count
 * as used, differently from one collection to the next), and bytecode is not
 * flushed (code unused for a few collections would otherwise shrink the heap
 * in the middle of a measurement).
 */
const NODE_FLAGS = ['--expose-gc', '--compact-on-every-full-gc', '--no-flush-bytecode'];

/**
 * Run the measurement in a new Node process (a fresh one holds nothing of
 * the caller's) with NODE_FLAGS. Each progress line the child prints goes to
 * `progress`.
 */
export function measureInChild(cfg: MemoryConfig, progress: (line: string) => void = () => undefined): Promise<MemoryFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, childScript(), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let partial = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) progress(l);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`the measuring process exited with ${signal ?? `code ${code}`}:\n${err}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as MemoryFigures);
      } catch (e) {
        reject(new Error(`the measuring process printed no figures (${(e as Error).message}):\n${out}\n${err}`));
      }
    });
  });
}
