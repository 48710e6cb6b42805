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
 * Run the measurement in a new Node process started with --expose-gc: the
 * retained heap can only be read after full collections, which need `gc()`,
 * and a fresh process holds nothing of the caller's. Each progress line the
 * child prints goes to `progress`.
 */
export function measureInChild(cfg: MemoryConfig, progress: (line: string) => void = () => undefined): Promise<MemoryFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', childScript(), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
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
