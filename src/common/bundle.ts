import { readdir, readFile, stat, mkdir, writeFile, rename, rm } from 'node:fs/promises';
import { join, relative, sep, resolve, dirname } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { BatonError } from './errors.js';

/**
 * A function bundle: the files of a function's directory, as
 * gzip(msgpack({ v: 1, files: [{ path, mode, data }] })). Addressed by the
 * sha256 of these bytes. Paths are relative, '/'-separated, never escaping the
 * directory.
 */
interface BundleFile {
  path: string;
  mode: number;
  data: Uint8Array;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const SKIP = new Set(['.git', '.baton', '.DS_Store']);

export const DEFAULT_MAX_BUNDLE_BYTES = 50 * 1024 * 1024;

export async function packDirectory(dir: string, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const root = resolve(dir);
  const files: BundleFile[] = [];
  let total = 0;
  async function walk(d: string): Promise<void> {
    const entries = await readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (SKIP.has(e.name)) continue;
      const full = join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) {
        const [data, st] = await Promise.all([readFile(full), stat(full)]);
        total += data.length;
        if (total > maxBytes) {
          throw new BatonError('payload_too_large', `bundle of ${root} exceeds ${maxBytes} bytes (at ${relative(root, full)})`);
        }
        files.push({ path: relative(root, full).split(sep).join('/'), mode: st.mode & 0o777, data });
      }
    }
  }
  await walk(root);
  // Deterministic bytes for identical trees: fixed gzip header (no mtime) and sorted entries.
  return gzipSync(packr.pack({ v: 1, files }), { level: 6 });
}

export function readBundle(data: Uint8Array): BundleFile[] {
  let raw: unknown;
  try {
    raw = packr.unpack(gunzipSync(data));
  } catch (e) {
    throw new BatonError('bad_request', 'bundle is not a baton bundle (gzip of msgpack)', { cause: e });
  }
  const b = raw as { v?: unknown; files?: unknown };
  if (b.v !== 1 || !Array.isArray(b.files)) throw new BatonError('bad_request', 'bundle has an unknown format version');
  for (const f of b.files as BundleFile[]) {
    if (typeof f.path !== 'string' || !(f.data instanceof Uint8Array) || typeof f.mode !== 'number') {
      throw new BatonError('bad_request', 'bundle has a malformed file entry');
    }
    if (f.path.startsWith('/') || f.path.split('/').includes('..') || f.path === '') {
      throw new BatonError('bad_request', `bundle file path escapes the bundle: ${f.path}`);
    }
  }
  return b.files as BundleFile[];
}

/** Unpack into destDir atomically (write to a temp sibling, then rename). */
export async function unpackBundle(data: Uint8Array, destDir: string): Promise<void> {
  const files = readBundle(data);
  const tmp = `${destDir}.tmp-${process.pid}-${Date.now()}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  for (const f of files) {
    const target = join(tmp, f.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, f.data, { mode: f.mode || 0o644 });
  }
  await rm(destDir, { recursive: true, force: true });
  await rename(tmp, destDir);
}
