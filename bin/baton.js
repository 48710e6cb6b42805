#!/usr/bin/env node
// Thin entry point: the compiled CLI lives in dist/ (built by `npm run build`, which `npm install` runs).
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

// Node 22.1 and later can keep V8's compiled code on disk between runs (in the
// OS temp directory, or NODE_COMPILE_CACHE); it never throws. Node 20 has no
// such cache for ES modules and lacks the function, so there this does nothing.
module.enableCompileCache?.();

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('baton: the compiled CLI is missing; run `npm install` (or `npm run build`) in the baton checkout first.\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
