#!/usr/bin/env node
// Thin entry point: the compiled CLI lives in dist/ (built by `npm run build`, which `npm install` runs).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('baton: the compiled CLI is missing; run `npm install` (or `npm run build`) in the baton checkout first.\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
