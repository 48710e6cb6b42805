import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bundleLimits,
  bundlePathProblem,
  diskMode,
  handlerBundlePath,
  inflateBundle,
  inflateBundleAsync,
  readBundle,
  unpackBundle,
  verifyBundle,
  type BundleLimits,
} from './bundle.js';
import { BatonError } from './errors.js';
import { sha256Hex } from './ids.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const js = (text: string): Uint8Array => Buffer.from(text);

/** A bundle built by hand, so tests can say exactly what a hostile client would send. */
function bundleOf(files: { path: unknown; mode?: unknown; data?: unknown }[], extra: Record<string, unknown> = {}): Uint8Array {
  return gzipSync(packr.pack({ v: 1, files: files.map((f) => ({ mode: 0o644, data: js('x'), ...f })), ...extra }));
}

/** The BatonError `fn` throws (synchronously or not). */
async function refusal(fn: () => unknown): Promise<BatonError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BatonError);
    return e as BatonError;
  }
  throw new Error('expected a refusal, but the bundle was accepted');
}

const limits: BundleLimits = bundleLimits(1024 * 1024);

describe('bundle paths', () => {
  it.each([
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['a/../b', /"\.\." segment/],
    ['../up', /"\.\." segment/],
    ['./a', /"\." segment/],
    ['a//b', /empty segment/],
    ['a/', /empty segment/],
    ['a\\b', /backslash/],
    ['a\0b', /NUL/],
    [`${'x'.repeat(256)}`, /longer than 255 bytes/],
    [`${'abc/'.repeat(300)}z`, /longer than 1024 bytes/],
  ])('refuses %j', (path, why) => {
    expect(bundlePathProblem(path)).toMatch(why);
  });

  it('accepts ordinary relative paths', () => {
    for (const p of ['index.js', 'src/handler.mjs', '.env', 'a/b/c/d.json', 'dots..in.name']) expect(bundlePathProblem(p)).toBeUndefined();
  });

  it('maps a handler to the bundle path it names, or to nothing when it could not be inside', () => {
    expect(handlerBundlePath('./index.js')).toBe('index.js');
    expect(handlerBundlePath('src/./h.mjs')).toBe('src/h.mjs');
    expect(handlerBundlePath('../x.js')).toBeUndefined();
    expect(handlerBundlePath('/abs/x.js')).toBeUndefined();
    expect(handlerBundlePath('a\\b.js')).toBeUndefined();
  });
});

describe('readBundle refuses what could not be unpacked as given', () => {
  it('refuses a file that is also a directory, in either order', async () => {
    const e1 = await refusal(() => readBundle(bundleOf([{ path: 'a' }, { path: 'a/b' }]), limits));
    expect(e1.code).toBe('bad_request');
    expect(e1.message).toContain('"a" both as a file and as the directory of "a/b"');
    const e2 = await refusal(() => readBundle(bundleOf([{ path: 'lib/x/y.js' }, { path: 'lib/x' }]), limits));
    expect(e2.message).toContain('"lib/x" both as a file and as a directory');
  });

  it('refuses duplicate paths', async () => {
    const e = await refusal(() => readBundle(bundleOf([{ path: 'index.js' }, { path: 'index.js' }]), limits));
    expect(e.message).toContain('"index.js" twice');
  });

  it('refuses unsafe paths, naming them', async () => {
    for (const path of ['../evil.js', '/abs.js', 'a//b.js', 'a\\b.js', 'a\0.js', './x.js']) {
      const e = await refusal(() => readBundle(bundleOf([{ path }]), limits));
      expect(e.code).toBe('bad_request');
      expect(e.message).toContain(JSON.stringify(path));
    }
  });

  it('refuses entries that are not regular files', async () => {
    const fifo = await refusal(() => readBundle(bundleOf([{ path: 'p', mode: 0o010644 }]), limits));
    expect(fifo.message).toMatch(/"p" is not a regular file \(mode 0o10644: FIFO\)/);
    const dev = await refusal(() => readBundle(bundleOf([{ path: 'tty', mode: 0o020666 }]), limits));
    expect(dev.message).toContain('character device');
    const link = await refusal(() => readBundle(bundleOf([{ path: 'l', mode: 0o120777 }]), limits));
    expect(link.message).toContain('symbolic link');
    const bad = await refusal(() => readBundle(bundleOf([{ path: 'm', mode: -1 }]), limits));
    expect(bad.message).toContain('invalid mode -1');
    // a regular-file type and plain permission bits are both fine
    expect(readBundle(bundleOf([{ path: 'a', mode: 0o100755 }, { path: 'b', mode: 0o4755 }]), limits).map((f) => f.path)).toEqual(['a', 'b']);
  });

  it('refuses malformed entries and unknown versions', async () => {
    expect((await refusal(() => readBundle(bundleOf([{ path: 7 }]), limits))).message).toContain('bundle file #1 is malformed');
    expect((await refusal(() => readBundle(bundleOf([{ path: 'a', data: 'text' }]), limits))).message).toContain('malformed');
    expect((await refusal(() => readBundle(gzipSync(packr.pack({ v: 2, files: [] })), limits))).message).toContain('unknown format version');
    expect((await refusal(() => readBundle(gzipSync(packr.pack('just a string')), limits))).message).toContain('unknown format version');
    expect((await refusal(() => readBundle(js('not gzip at all'), limits))).message).toContain('not valid gzip data');
  });

  it('refuses more files than the limit, naming it', async () => {
    const small: BundleLimits = { ...limits, maxFiles: 3 };
    const four = bundleOf([{ path: 'a' }, { path: 'b' }, { path: 'c' }, { path: 'd' }]);
    const e = await refusal(() => readBundle(four, small));
    expect(e.code).toBe('bad_request');
    expect(e.message).toBe('bundle has 4 files; the limit is 3 files');
    expect(readBundle(bundleOf([{ path: 'a' }, { path: 'b' }, { path: 'c' }]), small)).toHaveLength(3);
  });
});

describe('gzip bombs', () => {
  // 64 MiB of zeros gzip to about 64 KB; the limit here is 1 MiB.
  const bomb = gzipSync(packr.pack({ v: 1, files: [{ path: 'index.js', mode: 0o644, data: new Uint8Array(64 * 1024 * 1024) }] }), { level: 9 });

  it('stops inflating at the unpacked limit and says so (sync and async)', async () => {
    expect(bomb.length).toBeLessThan(limits.maxBytes);
    const sync = await refusal(() => inflateBundle(bomb, limits.maxUnpackedBytes));
    expect(sync.code).toBe('payload_too_large');
    expect(sync.status).toBe(413);
    expect(sync.message).toBe(`bundle inflates to more than ${limits.maxUnpackedBytes} bytes, the limit for an unpacked bundle`);
    const async = await refusal(() => inflateBundleAsync(bomb, limits.maxUnpackedBytes));
    expect(async.code).toBe('payload_too_large');
    expect(async.message).toContain(String(limits.maxUnpackedBytes));
  });

  it('lets a bundle through that inflates to exactly the limit', () => {
    const raw = packr.pack({ v: 1, files: [{ path: 'a', mode: 0o644, data: new Uint8Array(1000) }] });
    const gz = gzipSync(raw);
    expect(inflateBundle(gz, raw.length)).toHaveLength(raw.length);
    expect(() => inflateBundle(gz, raw.length - 1)).toThrow(/inflates to more than/);
  });

  it('verifyBundle and unpackBundle refuse the bomb too', async () => {
    expect((await refusal(() => verifyBundle(bomb, limits, 'index.js'))).code).toBe('payload_too_large');
    const dir = mkdtempSync(join(tmpdir(), 'baton-bomb-'));
    try {
      expect((await refusal(() => unpackBundle(bomb, join(dir, 'out'), limits))).code).toBe('payload_too_large');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('verifyBundle', () => {
  const good = bundleOf([{ path: 'index.js', data: js('export default () => "hi"') }, { path: 'lib/util.mjs' }, { path: 'README.md' }, { path: 'node_modules/dep/x.js' }]);

  it('summarises a good bundle: hash, files, inflated size, handler', () => {
    const s = verifyBundle(good, limits, './index.js');
    expect(s.hash).toBe(sha256Hex(good));
    expect(s.fileCount).toBe(4);
    expect(s.unpackedBytes).toBe(inflateBundle(good, limits.maxUnpackedBytes).length);
    expect(s.hasHandler).toBe(true);
    expect(s.modules).toEqual(['index.js', 'lib/util.mjs']);
    expect(s.moduleCount).toBe(2);
  });

  it('reports a missing handler and lists the modules that are there', () => {
    const s = verifyBundle(good, limits, 'main.js');
    expect(s.hasHandler).toBe(false);
    expect(s.modules).toEqual(['index.js', 'lib/util.mjs']);
    expect(verifyBundle(good, limits, 'lib').hasHandler).toBe(false);
    expect(verifyBundle(good, limits).hasHandler).toBe(false);
  });

  it('refuses a bundle over the upload limit before inflating it', async () => {
    const e = await refusal(() => verifyBundle(good, { ...limits, maxBytes: good.length - 1 }, 'index.js'));
    expect(e.code).toBe('payload_too_large');
    expect(e.message).toBe(`bundle of ${good.length} bytes exceeds the limit of ${good.length - 1} bytes`);
  });
});

describe('unpackBundle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-unpack-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps at most 0755: no setuid/setgid/sticky, no group/other write, code stays readable', () => {
    expect(diskMode(0o4755)).toBe(0o755);
    expect(diskMode(0o2777)).toBe(0o755);
    expect(diskMode(0o1666)).toBe(0o644);
    expect(diskMode(0o666)).toBe(0o644);
    expect(diskMode(0o600)).toBe(0o644);
    expect(diskMode(0o100700)).toBe(0o755);
    expect(diskMode(0)).toBe(0o644);
  });

  it('writes the files with those modes and directories at 0755, whatever the umask', async () => {
    const data = bundleOf([
      { path: 'run.sh', mode: 0o6777, data: js('#!/bin/sh\n') },
      { path: 'lib/shared.js', mode: 0o1666, data: js('export {}') },
      { path: 'lib/deep/x.txt', mode: 0o600, data: js('x') },
    ]);
    const out = join(dir, 'b1');
    const old = process.umask(0);
    try {
      await unpackBundle(data, out, limits);
    } finally {
      process.umask(old);
    }
    const mode = (p: string): number => statSync(join(out, p)).mode & 0o7777;
    expect(mode('run.sh')).toBe(0o755);
    expect(mode('lib/shared.js')).toBe(0o644);
    expect(mode('lib/deep/x.txt')).toBe(0o644);
    expect(mode('lib')).toBe(0o755);
    expect(mode('lib/deep')).toBe(0o755);
    expect(mode('.')).toBe(0o755);
    expect(readFileSync(join(out, 'run.sh'), 'utf8')).toBe('#!/bin/sh\n');
    if (process.getuid?.() === 0) expect(statSync(join(out, 'run.sh')).uid).toBe(0);
  });

  it('writes nothing for a bundle it refuses', async () => {
    const out = join(dir, 'b2');
    const e = await refusal(() => unpackBundle(bundleOf([{ path: 'ok.js' }, { path: 'fifo', mode: 0o010644 }]), out, limits));
    expect(e.message).toContain('not a regular file');
    expect(readdirSync(dir).filter((n) => n.startsWith('b2'))).toEqual([]);
  });
});
