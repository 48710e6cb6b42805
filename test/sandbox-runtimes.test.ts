import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/common/logger.js';
import type { SandboxSpec } from '../src/protocol/messages.js';
import { EmulatedRuntime } from '../src/sandbox/emulated/emulated-runtime.js';
import { createProcessRuntimes } from '../src/sandbox/process/process-runtimes.js';
import type { SandboxRuntime } from '../src/sandbox/runtime.js';
import { FIXTURES } from './helpers/cluster.js';

const scratch = mkdtempSync(join(tmpdir(), 'baton-rt-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function spec(over: Partial<SandboxSpec>): SandboxSpec {
  return { functionKey: 'default/t', version: 1, incarnation: 'fi_test', runtime: 'node', env: { GREETING: 'hey' }, concurrency: 4, timeoutMs: 2000, bundleHash: '', priceClass: 'standard', ...over };
}
const req = (body: string, timeoutMs = 2000) => ({ callId: 'c1', method: 'POST', path: '/p?q=1', headers: { 'content-type': 'text/plain' }, body: new TextEncoder().encode(body), timeoutMs, priceClass: 'standard', maxResponseBytes: 1024 * 1024 });
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** One suite every process runtime passes: create, invoke, concurrency, errors, timeout, crash detection, stop. */
function conformance(name: string, make: () => SandboxRuntime, s: SandboxSpec, codeDir: string): void {
  describe(`runtime ${name}`, () => {
    const rt = make();
    afterAll(() => rt.close());

    it('creates, invokes, runs calls concurrently, and stops', async () => {
      const sb = await rt.create(`sb-${name}-1`, s, codeDir);
      const r = await sb.invoke(req('10'));
      expect(r.status).toBe(200);
      expect(r.error).toBeUndefined();
      const many = await Promise.all([1, 2, 3].map(() => sb.invoke(req('300'))));
      expect(many.every((m) => m.status === 200)).toBe(true);
      // concurrency 4: all three calls were running before the first one ended
      const spans = many.map((m) => JSON.parse(text(m.body)) as { start: number; end: number });
      expect(Math.max(...spans.map((x) => x.start))).toBeLessThan(Math.min(...spans.map((x) => x.end)));
      await sb.stop();
      if (sb.pid !== undefined) expect(() => process.kill(sb.pid as number, 0)).toThrow();
    });

    it('reports an overrun as 504 and a crash through onExit', async () => {
      const sb = await rt.create(`sb-${name}-2`, s, codeDir);
      const slow = await sb.invoke(req('5000', 300));
      expect(slow.status).toBe(504);
      expect(slow.error?.code).toBe('timeout');
      const sb2 = await rt.create(`sb-${name}-3`, s, codeDir);
      const exited = new Promise<string>((r) => sb2.onExit(r));
      process.kill(sb2.pid as number, 'SIGKILL');
      expect(await exited).toMatch(/exited/);
      await sb.stop();
    });
  });
}

const log = silentLogger();
let n = 0;
const runtimes = (stemCells = 1) => createProcessRuntimes({ log, stateDir: join(scratch, `state-${n++}`), nodeId: `node-rt-${n}`, memoryMb: 1024, stemCells });
conformance('node', () => runtimes().node, spec({ runtime: 'node', handler: 'index.js' }), join(FIXTURES, 'rt-sleep'));
conformance('http', () => runtimes(0).http, spec({ runtime: 'http', command: [process.execPath, 'server.js'] }), join(FIXTURES, 'rt-sleep'));

describe('runtime node specifics', () => {
  it('a handler that throws is a 500 function_error; a module without a handler fails creation clearly', async () => {
    const rt = runtimes(0).node;
    const sb = await rt.create('sb-throw', spec({ runtime: 'node', handler: 'index.js' }), join(FIXTURES, 'cp-sleep'));
    const r = await sb.invoke(req('throw'));
    expect(r.status).toBe(500);
    expect(r.error).toEqual({ code: 'function_error', message: 'boom from the handler' });
    const env = await rt.create('sb-env', spec({ runtime: 'node', handler: 'index.js' }), join(FIXTURES, 'cp-hello'));
    expect(text((await env.invoke(req('you'))).body)).toBe('hey you');
    await expect(rt.create('sb-bad', spec({ runtime: 'node', handler: 'missing.js' }), join(FIXTURES, 'cp-hello'))).rejects.toThrow(/cannot load missing.js/);
    await sb.stop();
    await env.stop();
    await rt.close();
  });

  it('the http runtime names the command and its stderr when it never serves', async () => {
    const rt = runtimes(0).http;
    await expect(rt.create('sb-x', spec({ runtime: 'http', command: [process.execPath, '-e', 'console.error("no port for me"); process.exit(3)'] }), undefined)).rejects.toThrow(/exited before serving.*code 3.*no port for me/);
  });
});

describe('runtime emulated', () => {
  it('answers after its configured execution time, marked as emulated', async () => {
    const rt = new EmulatedRuntime({ createMs: 5, execMs: 20 });
    const sb = await rt.create('e1', spec({}));
    const t0 = performance.now();
    const r = await sb.invoke(req(''));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(15);
    expect(r.headers['x-baton-emulated']).toBe('1');
    expect(text(r.body)).toBe('emulated');
    expect(() => new EmulatedRuntime({ execMs: -1 })).toThrow(/emulated.execMs/);
  });

  it('answers at once with no execution time, and freezing pauses an emulated call like a real one', async () => {
    const rt = new EmulatedRuntime({ execMs: 0 });
    const quick = await rt.create('e2', spec({}));
    expect((await quick.invoke(req(''))).status).toBe(200);
    const slowRt = new EmulatedRuntime({ execMs: 100 });
    const sb = await slowRt.create('e3', spec({}));
    const t0 = performance.now();
    const pending = sb.invoke(req(''));
    sb.freeze();
    await new Promise((r) => setTimeout(r, 150));
    sb.thaw();
    expect((await pending).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(200);
  });
});
