import { readdir, readFile, stat, mkdir, writeFile, rename, rm, chmod } from 'node:fs/promises';
import { join, relative, sep, resolve, posix } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync, gunzip, gunzipSync, type ZlibOptions } from 'node:zlib';
import { Packr } from 'msgpackr';
import { BatonError } from './errors.js';
import { sha256Hex } from './ids.js';

/**
 * A function bundle: the files of a function's directory, as
 * gzip(msgpack({ v: 1, files: [{ path, mode, data }] })). Addressed by the
 * sha256 of these bytes. Paths are relative, '/'-separated, never escaping the
 * directory; every entry is a regular file.
 *
 * Everything here treats a bundle as untrusted input: inflating stops at a byte
 * limit (a few hundred KB of gzip can inflate to gigabytes), and a bundle is
 * refused unless every path could be written as given and without clashing
 * with another one.
 */
export interface BundleFile {
  path: string;
  mode: number;
  data: Uint8Array;
}

export interface BundleLimits {
  /** Largest bundle as uploaded (gzip bytes). */
  maxBytes: number;
  /** Largest bundle once inflated (the msgpack document: file data, paths and framing). */
  maxUnpackedBytes: number;
  /** Most files in one bundle. */
  maxFiles: number;
}

/** What a check of a bundle found, for the control plane to decide and to report. */
export interface BundleSummary {
  /** sha256 of the bundle bytes: its address in the store and on workers. */
  hash: string;
  fileCount: number;
  unpackedBytes: number;
  /** Whether the handler asked about is one of the files (false when none was asked about). */
  hasHandler: boolean;
  /** JS modules in the bundle (sorted, at most MODULES_LISTED), to name when the handler is missing. */
  modules: string[];
  moduleCount: number;
}

export const DEFAULT_MAX_BUNDLE_BYTES = 50 * 1024 * 1024;
export const MAX_BUNDLE_FILES = 10_000;
/** Linux's NAME_MAX; a whole path is bounded well below PATH_MAX so it fits under any state directory. */
export const MAX_PATH_SEGMENT_BYTES = 255;
export const MAX_PATH_BYTES = 1024;
const MODULES_LISTED = 10;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const FILE_TYPES: Record<number, string> = {
  0o140000: 'socket',
  0o120000: 'symbolic link',
  0o060000: 'block device',
  0o040000: 'directory',
  0o020000: 'character device',
  0o010000: 'FIFO',
};

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const gunzipAsync = promisify<Uint8Array, ZlibOptions, Buffer>(gunzip);
const SKIP = new Set(['.git', '.baton', '.DS_Store']);

/** The limits for a control plane that accepts bundles of up to `maxBytes`: inflated, a bundle may not grow past the same figure. */
export function bundleLimits(maxBytes = DEFAULT_MAX_BUNDLE_BYTES): BundleLimits {
  return { maxBytes, maxUnpackedBytes: maxBytes, maxFiles: MAX_BUNDLE_FILES };
}

export async function packDirectory(dir: string, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
  const limits = bundleLimits(opts.maxBytes);
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
        if (total > limits.maxUnpackedBytes) {
          throw new BatonError('payload_too_large', `bundle of ${root} exceeds ${limits.maxUnpackedBytes} bytes (at ${relative(root, full)})`);
        }
        if (files.length === limits.maxFiles) {
          throw new BatonError('payload_too_large', `bundle of ${root} has more than ${limits.maxFiles} files (at ${relative(root, full)})`);
        }
        files.push({ path: relative(root, full).split(sep).join('/'), mode: st.mode & 0o777, data });
      }
    }
  }
  await walk(root);
  const raw = packr.pack({ v: 1, files });
  if (raw.length > limits.maxUnpackedBytes) {
    throw new BatonError('payload_too_large', `bundle of ${root} is ${raw.length} bytes with its paths, over the limit of ${limits.maxUnpackedBytes} bytes`);
  }
  // Deterministic bytes for identical trees: fixed gzip header (no mtime) and sorted entries.
  return gzipSync(raw, { level: 6 });
}

function tooLargeWhenInflated(limit: number, cause: unknown): BatonError {
  return new BatonError('payload_too_large', `bundle inflates to more than ${limit} bytes, the limit for an unpacked bundle`, { cause, details: { limit } });
}

function inflateError(e: unknown, limit: number): BatonError {
  if ((e as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') return tooLargeWhenInflated(limit, e);
  return new BatonError('bad_request', `bundle is not a baton bundle: not valid gzip data (${(e as Error).message})`, { cause: e });
}

/** Inflate on the calling thread, stopping as soon as the output passes `maxUnpackedBytes`. */
export function inflateBundle(data: Uint8Array, maxUnpackedBytes: number): Uint8Array {
  try {
    return gunzipSync(data, { maxOutputLength: maxUnpackedBytes });
  } catch (e) {
    throw inflateError(e, maxUnpackedBytes);
  }
}

/** Inflate on the libuv thread pool (the event loop stays free), with the same bound. */
export async function inflateBundleAsync(data: Uint8Array, maxUnpackedBytes: number): Promise<Uint8Array> {
  try {
    return await gunzipAsync(data, { maxOutputLength: maxUnpackedBytes });
  } catch (e) {
    throw inflateError(e, maxUnpackedBytes);
  }
}

/** Why `path` cannot be a bundle path, or undefined when it can. */
export function bundlePathProblem(path: string): string | undefined {
  if (path === '') return 'it is empty';
  if (path.includes('\0')) return 'it contains a NUL byte';
  if (path.includes('\\')) return 'it contains a backslash (bundle paths are /-separated)';
  if (path.startsWith('/')) return 'it is absolute';
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return `it is longer than ${MAX_PATH_BYTES} bytes`;
  for (const segment of path.split('/')) {
    if (segment === '') return 'it has an empty segment (a doubled or trailing /)';
    if (segment === '.' || segment === '..') return `it has a "${segment}" segment`;
    if (Buffer.byteLength(segment) > MAX_PATH_SEGMENT_BYTES) return `it has a name longer than ${MAX_PATH_SEGMENT_BYTES} bytes`;
  }
  return undefined;
}

/** A path for a message: quoted, escaped, and cut short if long. */
function show(path: string): string {
  return JSON.stringify(path.length > 120 ? `${path.slice(0, 120)}…` : path);
}

function checkMode(path: string, mode: number): void {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o177777) {
    throw new BatonError('bad_request', `bundle file ${show(path)} has an invalid mode ${mode}`);
  }
  const type = mode & S_IFMT;
  if (type !== 0 && type !== S_IFREG) {
    const what = FILE_TYPES[type] ?? 'unknown file type';
    throw new BatonError('bad_request', `bundle file ${show(path)} is not a regular file (mode 0o${mode.toString(8)}: ${what}); bundles hold regular files only`);
  }
}

/**
 * Decode an inflated bundle and check every entry: the format, at most
 * `maxFiles` files, paths that are relative, clean and unique, no file that is
 * also another file's directory, and regular files only.
 */
export function parseBundle(raw: Uint8Array, limits: BundleLimits): BundleFile[] {
  let doc: unknown;
  try {
    doc = packr.unpack(raw);
  } catch (e) {
    throw new BatonError('bad_request', 'bundle is not a baton bundle (gzip of msgpack)', { cause: e });
  }
  const b = (typeof doc === 'object' && doc !== null ? doc : {}) as { v?: unknown; files?: unknown };
  if (b.v !== 1 || !Array.isArray(b.files)) throw new BatonError('bad_request', 'bundle has an unknown format version (expected { v: 1, files: [...] })');
  const entries: unknown[] = b.files;
  if (entries.length > limits.maxFiles) {
    throw new BatonError('bad_request', `bundle has ${entries.length} files; the limit is ${limits.maxFiles} files`, { details: { limit: limits.maxFiles } });
  }
  const files = new Set<string>();
  const dirs = new Set<string>();
  entries.forEach((entry, i) => {
    const f = (typeof entry === 'object' && entry !== null ? entry : {}) as Partial<BundleFile>;
    if (typeof f.path !== 'string' || !(f.data instanceof Uint8Array) || typeof f.mode !== 'number') {
      throw new BatonError('bad_request', `bundle file #${i + 1} is malformed (needs a string path, a numeric mode and binary data)`);
    }
    const problem = bundlePathProblem(f.path);
    if (problem !== undefined) throw new BatonError('bad_request', `bundle file path ${show(f.path)} is not allowed: ${problem}`);
    checkMode(f.path, f.mode);
    if (files.has(f.path)) throw new BatonError('bad_request', `bundle has the file ${show(f.path)} twice`);
    if (dirs.has(f.path)) throw new BatonError('bad_request', `bundle has ${show(f.path)} both as a file and as a directory of other files`);
    for (let at = f.path.indexOf('/'); at !== -1; at = f.path.indexOf('/', at + 1)) {
      const dir = f.path.slice(0, at);
      if (files.has(dir)) throw new BatonError('bad_request', `bundle has ${show(dir)} both as a file and as the directory of ${show(f.path)}`);
      dirs.add(dir);
    }
    files.add(f.path);
  });
  return entries as BundleFile[];
}

/** Inflate (bounded) and check a bundle on the calling thread. */
export function readBundle(data: Uint8Array, limits: BundleLimits = bundleLimits()): BundleFile[] {
  return parseBundle(inflateBundle(data, limits.maxUnpackedBytes), limits);
}

/**
 * The bundle path a handler names (`./index.js` → `index.js`), or undefined when
 * it could never be inside a bundle (absolute, or climbing out with `..`).
 */
export function handlerBundlePath(handler: string): string | undefined {
  if (handler.includes('\\') || handler.includes('\0') || posix.isAbsolute(handler)) return undefined;
  const p = posix.normalize(handler);
  return bundlePathProblem(p) === undefined ? p : undefined;
}

const MODULE = /\.(m|c)?js$/;

/**
 * Everything the control plane checks before storing a bundle: size limits,
 * format, paths and modes, and whether `handler` is among the files. Sync and
 * CPU-heavy for large bundles: run it off the main thread.
 */
export function verifyBundle(data: Uint8Array, limits: BundleLimits, handler?: string): BundleSummary {
  if (data.length > limits.maxBytes) {
    throw new BatonError('payload_too_large', `bundle of ${data.length} bytes exceeds the limit of ${limits.maxBytes} bytes`, { details: { limit: limits.maxBytes } });
  }
  const raw = inflateBundle(data, limits.maxUnpackedBytes);
  const files = parseBundle(raw, limits);
  const wanted = handler === undefined ? undefined : handlerBundlePath(handler);
  const modules = files
    .map((f) => f.path)
    .filter((p) => MODULE.test(p) && !p.startsWith('node_modules/') && !p.includes('/node_modules/'))
    .sort();
  return {
    hash: sha256Hex(data),
    fileCount: files.length,
    unpackedBytes: raw.length,
    hasHandler: wanted !== undefined && files.some((f) => f.path === wanted),
    modules: modules.slice(0, MODULES_LISTED),
    moduleCount: modules.length,
  };
}

/**
 * Permissions a bundle file gets on disk: never setuid, setgid or sticky, never
 * writable by group or others. Sandboxes may run as another user than the one
 * unpacking, so code stays readable (and executable when it was).
 */
export function diskMode(mode: number): number {
  return (mode & 0o111) !== 0 ? 0o755 : 0o644;
}

/**
 * Unpack into destDir atomically (write to a temp sibling, then rename).
 * Inflates on the libuv pool with the limit, checks every entry before writing
 * anything, and sets every mode explicitly (the umask does not decide).
 */
export async function unpackBundle(data: Uint8Array, destDir: string, limits: BundleLimits = bundleLimits()): Promise<void> {
  if (data.length > limits.maxBytes) {
    throw new BatonError('payload_too_large', `bundle of ${data.length} bytes exceeds the limit of ${limits.maxBytes} bytes`);
  }
  const files = parseBundle(await inflateBundleAsync(data, limits.maxUnpackedBytes), limits);
  const tmp = `${destDir}.tmp-${process.pid}-${Date.now()}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(tmp, { recursive: true });
    await chmod(tmp, 0o755);
    const dirs = new Set<string>();
    for (const f of files) for (let at = f.path.indexOf('/'); at !== -1; at = f.path.indexOf('/', at + 1)) dirs.add(f.path.slice(0, at));
    // Sorted, a parent comes before its children.
    for (const d of [...dirs].sort()) {
      await mkdir(join(tmp, d));
      await chmod(join(tmp, d), 0o755);
    }
    for (const f of files) {
      const target = join(tmp, f.path);
      // 'wx': a fresh file or an error, never through something already there.
      await writeFile(target, f.data, { mode: 0o600, flag: 'wx' });
      await chmod(target, diskMode(f.mode));
    }
    await rm(destDir, { recursive: true, force: true });
    await rename(tmp, destDir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
