import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BUNDLE_BYTES, MAX_BUNDLE_FILES } from '../src/common/bundle.js';
import { sha256Hex } from '../src/common/ids.js';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, type ApiResponse, type CpHandle, type WorkerHandle } from './helpers/cluster.js';

/**
 * Bad input at deploy is refused at deploy: a 400 (or 413) naming the problem,
 * and nothing stored. Runs the real control plane and a real process worker.
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const HELLO = readFileSync(join(FIXTURES, 'cp-hello/index.js'));

interface Entry {
  path: string;
  mode?: number;
  data?: Uint8Array;
}

/** A bundle as a hostile or buggy client could build it, bypassing packDirectory. */
function handMade(files: Entry[]): Uint8Array {
  return gzipSync(packr.pack({ v: 1, files: files.map((f) => ({ mode: 0o644, data: Buffer.from('x'), ...f })) }));
}

const node = { runtime: 'node', handler: 'index.js' };
const put = (cp: CpHandle, name: string, spec: Record<string, unknown>, bundle?: Uint8Array | string): Promise<ApiResponse> =>
  api(cp, 'PUT', `/v1/namespaces/default/functions/${name}`, {
    spec,
    ...(bundle === undefined ? {} : { bundle: typeof bundle === 'string' ? bundle : Buffer.from(bundle).toString('base64') }),
  });
const err = (r: ApiResponse): { code: string; message: string } => (r.body as { error: { code: string; message: string } }).error;

describe('deploy validation on a real cluster', () => {
  let cp: CpHandle;
  let worker: WorkerHandle;
  const dirs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    worker = await startWorker(cp);
    dirs.push(worker.stateDir);
  });
  afterAll(() => stopAll(dirs));

  /** Deploy must fail with `status`/`code` and a message matching `says`; the function must stay absent. */
  async function refused(name: string, r: ApiResponse, status: number, code: string, says: (string | RegExp)[]): Promise<void> {
    expect(r.status, r.text).toBe(status);
    expect(err(r).code).toBe(code);
    for (const s of says) expect(err(r).message).toMatch(s);
    const get = await api(cp, 'GET', `/v1/namespaces/default/functions/${name}`);
    expect(get.status).toBe(404);
  }

  it('timeouts and other durations out of bounds → 400 naming the field', async () => {
    const bundle = handMade([{ path: 'index.js', data: HELLO }]);
    await refused('t0', await put(cp, 't0', { ...node, timeout: 0 }, bundle), 400, 'invalid_manifest', ['spec.timeout: must be between 1ms and 15m']);
    await refused('t1', await put(cp, 't1', { ...node, timeout: '1000h' }, bundle), 400, 'invalid_manifest', ['spec.timeout', '1000h']);
    await refused('t2', await put(cp, 't2', { runtime: 'http', command: ['x'], timeout: '1.5ms' }), 400, 'invalid_manifest', ['spec.timeout: must be a whole number of milliseconds']);
    await refused('k', await put(cp, 'k', { ...node, scale: { keepAlive: '1000h' } }, bundle), 400, 'invalid_manifest', ['spec.scale.keepAlive: must be between 0ms and 24h']);
    await refused('w', await put(cp, 'w', { ...node, scale: { stableWindow: 0, panicWindow: '2h' } }, bundle), 400, 'invalid_manifest', [
      'spec.scale.stableWindow',
      'spec.scale.panicWindow',
    ]);
  });

  it('a handler missing from the bundle → 400 naming the handler, the bundle and the modules that are there', async () => {
    const bundle = handMade([{ path: 'main.js', data: HELLO }, { path: 'lib/util.mjs' }, { path: 'package.json' }]);
    await refused('nohandler', await put(cp, 'nohandler', node, bundle), 400, 'invalid_manifest', [
      'spec.handler: "index.js" is not in the bundle',
      `sha256 ${sha256Hex(bundle).slice(0, 12)}`,
      '3 files',
      'its JS modules: lib/util.mjs, main.js',
    ]);
    await refused('escape', await put(cp, 'escape', { runtime: 'node', handler: '../index.js' }, bundle), 400, 'invalid_manifest', ['spec.handler: "../index.js" is not a path inside the bundle']);
  });

  it('bundles whose files could not be unpacked as given → 400 naming the path', async () => {
    const cases: [string, Entry[], string][] = [
      ['conflict', [{ path: 'index.js', data: HELLO }, { path: 'a' }, { path: 'a/b' }], '"a" both as a file and as the directory of "a/b"'],
      ['dup', [{ path: 'index.js', data: HELLO }, { path: 'index.js', data: HELLO }], '"index.js" twice'],
      ['dotdot', [{ path: 'index.js', data: HELLO }, { path: 'x/../../evil' }], '"x/../../evil" is not allowed'],
      ['empty-seg', [{ path: 'index.js', data: HELLO }, { path: 'lib//x.js' }], '"lib//x.js" is not allowed: it has an empty segment'],
      ['backslash', [{ path: 'index.js', data: HELLO }, { path: 'lib\\x.js' }], 'backslash'],
      ['nul', [{ path: 'index.js', data: HELLO }, { path: 'x\0.js' }], 'NUL'],
      ['fifo', [{ path: 'index.js', data: HELLO }, { path: 'pipe', mode: 0o010644 }], '"pipe" is not a regular file'],
      ['device', [{ path: 'index.js', data: HELLO }, { path: 'dev', mode: 0o060600 }], 'block device'],
    ];
    for (const [name, files, says] of cases) await refused(name, await put(cp, name, node, handMade(files)), 400, 'bad_request', [says]);
  });

  it(`more than ${MAX_BUNDLE_FILES} files → 400 naming the limit`, async () => {
    const files: Entry[] = [{ path: 'index.js', data: HELLO }];
    for (let i = 0; i < MAX_BUNDLE_FILES; i++) files.push({ path: `f/${i}` });
    await refused('many', await put(cp, 'many', node, handMade(files)), 400, 'bad_request', [`bundle has ${MAX_BUNDLE_FILES + 1} files; the limit is ${MAX_BUNDLE_FILES} files`]);
  });

  it('a gzip bomb → 413 naming the unpacked limit, and a bundle that is not base64/gzip/msgpack → 400', async () => {
    // ~64 KB that inflate to 64 MiB, past the 50 MiB limit.
    const bomb = gzipSync(packr.pack({ v: 1, files: [{ path: 'index.js', mode: 0o644, data: new Uint8Array(64 * 1024 * 1024) }] }), { level: 9 });
    expect(bomb.length).toBeLessThan(1024 * 1024);
    await refused('bomb', await put(cp, 'bomb', node, bomb), 413, 'payload_too_large', [`inflates to more than ${DEFAULT_MAX_BUNDLE_BYTES} bytes`]);
    await refused('notb64', await put(cp, 'notb64', node, '!!! not base64 !!!'), 400, 'bad_request', ['not a base64 string']);
    await refused('notgz', await put(cp, 'notgz', node, Buffer.from('plain text')), 400, 'bad_request', ['not valid gzip data']);
    // msgpack cut short: an array header announcing two items, and nothing after it
    await refused('notmp', await put(cp, 'notmp', node, gzipSync(Buffer.from([0x92]))), 400, 'bad_request', ['not a baton bundle']);
    await refused('v2', await put(cp, 'v2', node, gzipSync(packr.pack({ v: 2, files: [] }))), 400, 'bad_request', ['unknown format version']);
  });

  it('a bad redeploy leaves the running version in place', async () => {
    expect((await deploy(cp, 'keep', node, join(FIXTURES, 'cp-hello'))).status).toBe(201);
    const before = (await api(cp, 'GET', '/v1/namespaces/default/functions/keep')).body as { function: { version: number; bundleHash: string } };
    const bad = await put(cp, 'keep', node, handMade([{ path: 'other.js', data: HELLO }]));
    expect(bad.status).toBe(400);
    expect(err(bad).message).toContain('"index.js" is not in the bundle');
    const badTimeout = await put(cp, 'keep', { ...node, timeout: '16m' }, handMade([{ path: 'index.js', data: HELLO }]));
    expect(badTimeout.status).toBe(400);
    const after = (await api(cp, 'GET', '/v1/namespaces/default/functions/keep')).body as { function: { version: number; bundleHash: string } };
    expect(after.function).toMatchObject({ version: before.function.version, bundleHash: before.function.bundleHash });
    const r = await api(cp, 'POST', '/function/keep', 'still');
    expect(r.status).toBe(200);
    expect(r.text).toBe('hello still');
  });

  it('after all that, a good function deploys and answers; the worker unpacked it with safe modes', async () => {
    const bundle = handMade([
      { path: 'index.js', data: HELLO, mode: 0o4777 },
      { path: 'lib/data.txt', mode: 0o2666, data: Buffer.from('d') },
    ]);
    const d = await put(cp, 'good', { ...node, env: { GREETING: 'hi' }, timeout: '15m' }, bundle);
    expect(d.status, d.text).toBe(201);
    const r = await api(cp, 'POST', '/function/good', 'there');
    expect(r.status).toBe(200);
    expect(r.text).toBe('hi there');
    const dir = join(worker.stateDir, 'bundles', sha256Hex(bundle));
    const mode = (p: string): number => statSync(join(dir, p)).mode & 0o7777;
    expect(mode('index.js')).toBe(0o755);
    expect(mode('lib/data.txt')).toBe(0o644);
    expect(mode('lib')).toBe(0o755);
    if (process.getuid?.() === 0) expect(statSync(join(dir, 'index.js')).uid).toBe(0);
    expect(cp.proc.exitCode).toBeNull();
    expect(worker.proc.exitCode).toBeNull();
  });
});
