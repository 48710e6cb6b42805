import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, FIXTURES, api, deploy, kill, startControlPlane, startWorker, stopAll, tempDir, waitFor, type CpHandle, type WorkerHandle } from './helpers/cluster.js';

interface Line {
  ts: number;
  callId: string | null;
  sandboxId: string;
  node: string;
  stream: string;
  line: string;
}
interface LogsBody {
  lines: Line[];
  truncated?: boolean;
  unanswered?: { node: string; nodeId: string; reason: string }[];
}

// every line these tests look for carries this, so nothing from another run can match
const T = Math.random().toString(36).slice(2, 8);

describe('function logs', () => {
  let cp: CpHandle;
  let worker: WorkerHandle;
  const workerName = `logs-w-${T}`;
  let keyX: string;
  let keyY: string;
  const dirs: string[] = [];
  /** Every call made here, by tag: its call id. */
  const calls = new Map<string, string>();

  const logs = async (fn: string, query = '', ns = 'default', key = cp.apiKey): Promise<{ status: number; body: LogsBody }> => {
    const r = await api(cp, 'GET', `/v1/namespaces/${ns}/functions/${fn}/logs${query}`, undefined, key);
    return { status: r.status, body: r.body as LogsBody };
  };
  const invoke = async (fn: string, body: string, key = cp.apiKey): Promise<{ status: number; callId: string; text: string }> => {
    const res = await fetch(`${cp.url}/function/${fn}`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body });
    const callId = res.headers.get('x-call-id') ?? '';
    calls.set(body, callId);
    return { status: res.status, callId, text: await res.text() };
  };
  // not spawnSync: a blocked event loop would keep this process from seeing the server close idle connections
  const cli = (args: string[], key = cp.apiKey): Promise<{ code: number; out: string; err: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [BIN, '--gateway', cp.url, '--api-key', key, ...args], { encoding: 'utf8', cwd: tempDir('logs-cwd'), timeout: 20_000 }, (e, out, err) => {
        resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out, err });
      });
    });
  const texts = (b: LogsBody): string[] => b.lines.map((l) => l.line);

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    worker = await startWorker(cp, { name: workerName });
    dirs.push(worker.stateDir);
    const spec = { runtime: 'node', handler: 'index.js', concurrency: 2, scale: { max: 1 }, env: { TAG: `M${T}` } };
    expect((await deploy(cp, 'logfn', spec, join(FIXTURES, 'logs-node'))).status).toBe(201);
    keyX = ((await api(cp, 'POST', '/v1/namespaces', { name: 'logs-x' })).body as { apiKey: string }).apiKey;
    keyY = ((await api(cp, 'POST', '/v1/namespaces', { name: 'logs-y' })).body as { apiKey: string }).apiKey;
  });
  afterAll(() => stopAll(dirs));

  it('tags each line with the call that wrote it, even for two calls at once in one sandbox', async () => {
    expect((await invoke('logfn', `once W${T}`)).status).toBe(200);
    const [a, b] = await Promise.all([invoke('logfn', `pair A${T}`), invoke('logfn', `pair B${T}`)]);
    expect(a?.status).toBe(200);
    expect(b?.status).toBe(200);
    // both ran in the one sandbox at the same time
    expect(JSON.parse(a?.text ?? '')).toEqual({ tag: `A${T}`, together: true });
    expect(JSON.parse(b?.text ?? '')).toEqual({ tag: `B${T}`, together: true });

    for (const [call, tag] of [[a, `A${T}`], [b, `B${T}`]] as const) {
      const r = await logs('logfn', `?callId=${call?.callId ?? ''}`);
      expect(r.status).toBe(200);
      // a call's lines are in the store before its response leaves the worker
      expect(r.body.lines.map((l) => [l.stream, l.line])).toEqual([
        ['stdout', `start ${tag}`],
        ['stdout', `middle ${tag} continued`],
        ['stderr', `end ${tag}`],
      ]);
      expect(r.body.lines.every((l) => l.callId === call?.callId && l.node === workerName)).toBe(true);
    }
    const all = await logs('logfn');
    const sandboxIds = new Set(all.body.lines.map((l) => l.sandboxId));
    expect(sandboxIds.size).toBe(1);
    // the module's own line was written outside any call
    const loaded = all.body.lines.find((l) => l.line === `module loaded M${T}`);
    expect(loaded?.callId).toBeNull();
    // oldest first
    const ts = all.body.lines.map((l) => l.ts);
    expect([...ts].sort((x, y) => x - y)).toEqual(ts);
  });

  it("puts a thrown error's stack in its call's log; lines from timers after the call and direct writes carry no call id", async () => {
    const thrown = await invoke('logfn', `throw E${T}`);
    expect(thrown.status).toBe(500);
    const r = await logs('logfn', `?callId=${thrown.callId}`);
    const lines = texts(r.body);
    expect(lines[0]).toBe(`about to throw E${T}`);
    expect(lines).toContain(`Error: boom E${T}`);
    // the stack's frames name the handler's file
    expect(lines.some((l) => /^\s+at .*index\.js/.test(l))).toBe(true);
    expect(r.body.lines.every((l) => l.stream === 'stderr')).toBe(true);

    const late = await invoke('logfn', `late L${T}`);
    const direct = await invoke('logfn', `direct D${T}`);
    const found = await waitFor(
      async () => {
        const b = (await logs('logfn')).body;
        const l = b.lines.find((x) => x.line === `late L${T}`);
        const d = b.lines.find((x) => x.line === `direct D${T}`);
        return l !== undefined && d !== undefined ? { l, d } : undefined;
      },
      10_000,
      () => 'the late and the direct line never showed up',
    );
    expect(found.l.callId).toBeNull();
    expect(found.d.callId).toBeNull();
    expect(found.d.stream).toBe('stdout');
    expect((await logs('logfn', `?callId=${late.callId}`)).body.lines).toEqual([]);
    expect((await logs('logfn', `?callId=${direct.callId}`)).body.lines).toEqual([]);
  });

  it('baton logs prints TIME CALLID stream line; --call, --since and -o json filter and format', async () => {
    const a = calls.get(`pair A${T}`) ?? '';
    const all = await cli(['logs', 'logfn']);
    expect(all.code).toBe(0);
    expect(all.out).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  ${a}  stdout  start A${T}$`, 'm'));
    expect(all.out).toMatch(new RegExp(`^\\S+  -  stdout  module loaded M${T}$`, 'm'));
    expect(all.out).toMatch(new RegExp(`  stderr  end B${T}$`, 'm'));

    const one = await cli(['logs', 'logfn', '--call', a]);
    expect(one.out.trim().split('\n')).toHaveLength(3);
    expect(one.out).not.toContain(`B${T}`);

    const json = JSON.parse((await cli(['-o', 'json', 'logs', 'logfn', '--call', a])).out) as LogsBody;
    expect(json.lines.map((l) => l.line)).toEqual([`start A${T}`, `middle A${T} continued`, `end A${T}`]);

    // --since: a date-time keeps the lines at and after it, a duration back from now reaches them all
    const lines = (await logs('logfn')).body.lines;
    const cut = lines.find((l) => l.line === `about to throw E${T}`);
    expect(cut).toBeDefined();
    const since = await cli(['logs', 'logfn', '--since', new Date(cut?.ts ?? 0).toISOString()]);
    expect(since.code).toBe(0);
    expect(since.out).toContain(`about to throw E${T}`);
    expect(since.out).toContain(`direct D${T}`);
    expect(since.out).not.toContain(`start A${T}`);
    expect(since.out).not.toContain(`module loaded M${T}`);
    expect((await cli(['logs', 'logfn', '--since', '10m'])).out).toContain(`start A${T}`);
    expect((await cli(['logs', 'logfn', '--since', 'yesterday-ish'])).err).toMatch(/--since yesterday-ish: expected a duration/);
    // the API says what is wrong with a bad parameter
    const bad = await api(cp, 'GET', '/v1/namespaces/default/functions/logfn/logs?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/limit: expected an integer/);
  });

  it('baton logs --follow prints lines logged after it started, each once', async () => {
    const proc = spawn(process.execPath, [BIN, '--gateway', cp.url, '--api-key', cp.apiKey, 'logs', 'logfn', '--follow', '--interval', '100ms'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: tempDir('logs-cwd') });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      await waitFor(() => out.includes(`start A${T}`) || undefined, 15_000, () => `follow printed no earlier lines:\n${out}\n${err}`);
      expect((await invoke('logfn', `once F1${T}`)).status).toBe(200);
      await waitFor(() => out.includes(`once F1${T}`) || undefined, 15_000, () => `follow did not print the new line:\n${out}\n${err}`);
      // polls go on: one more line, then nothing was printed twice
      expect((await invoke('logfn', `once F2${T}`)).status).toBe(200);
      await waitFor(() => out.includes(`once F2${T}`) || undefined, 15_000, () => `follow did not print the second new line:\n${out}\n${err}`);
      for (const text of [`start A${T}`, `once F1${T}`, `once F2${T}`, `module loaded M${T}`]) expect(out.split(text).length - 1).toBe(1);
      expect(out).toMatch(new RegExp(`  ${calls.get(`once F1${T}`) ?? 'none'}  stdout  once F1${T}$`, 'm'));
    } finally {
      await kill(proc, 'SIGINT');
    }
    expect(proc.exitCode).toBe(0);
  });

  it("no namespace sees another's logs", async () => {
    expect((await deploy(cp, 'same', { runtime: 'node', handler: 'index.js', env: { TAG: `X${T}` } }, join(FIXTURES, 'logs-node'), 'logs-x', keyX)).status).toBe(201);
    expect((await deploy(cp, 'same', { runtime: 'node', handler: 'index.js', env: { TAG: `Y${T}` } }, join(FIXTURES, 'logs-node'), 'logs-y', keyY)).status).toBe(201);
    expect((await invoke('same', `once SX${T}`, keyX)).status).toBe(200);
    expect((await invoke('same', `once SY${T}`, keyY)).status).toBe(200);
    const own = await logs('same', '', 'logs-x', keyX);
    expect(own.status).toBe(200);
    expect(texts(own.body)).toEqual(expect.arrayContaining([`module loaded X${T}`, `once SX${T}`]));
    expect(JSON.stringify(own.body)).not.toContain(`Y${T}`);

    // the other tenant: forbidden in x's namespace, its own function of that name has only its own lines, x's other function does not exist for it
    const cross = await logs('same', '', 'logs-x', keyY);
    expect(cross.status).toBe(403);
    expect(JSON.stringify(cross.body)).not.toContain(`X${T}`);
    const mine = await logs('same', '', 'logs-y', keyY);
    expect(texts(mine.body)).toContain(`once SY${T}`);
    expect(JSON.stringify(mine.body)).not.toContain(`X${T}`);
    expect((await logs('logfn', '', 'logs-y', keyY)).status).toBe(404);
    expect((await logs('logfn', '', 'default', keyY)).status).toBe(403);
    const viaCli = await cli(['logs', 'same', '-n', 'logs-x'], keyY);
    expect(viaCli.code).not.toBe(0);
    expect(viaCli.err).toMatch(/forbidden/);
    expect(viaCli.out).not.toContain(`X${T}`);
    expect((await logs('nope')).status).toBe(404);
  });

  it('captures an http server\'s stdout and stderr per sandbox, without call ids', async () => {
    expect((await deploy(cp, 'logweb', { runtime: 'http', command: [process.execPath, 'server.js'] }, join(FIXTURES, 'logs-http'))).status).toBe(201);
    expect((await invoke('logweb', `H${T}`)).text).toBe('ok');
    const b = await waitFor(
      async () => {
        const r = (await logs('logweb')).body;
        return r.lines.some((l) => l.line === `http err H${T}`) && r.lines.some((l) => l.line === `http got H${T}`) ? r : undefined;
      },
      10_000,
      () => 'the http server\'s lines never showed up',
    );
    expect(b.lines.find((l) => l.line === `http got H${T}`)).toMatchObject({ stream: 'stdout', callId: null, node: workerName });
    expect(b.lines.find((l) => l.line === `http err H${T}`)).toMatchObject({ stream: 'stderr', callId: null });
    expect(texts(b)).toContain('http server starting');
  });

  it("keeps a call's lines after its sandbox was replaced", async () => {
    const before = await invoke('logfn', `once R${T}`);
    const oldSandbox = (await logs('logfn', `?callId=${before.callId}`)).body.lines[0]?.sandboxId;
    expect(oldSandbox).toBeDefined();
    // a new version: the old sandbox is deleted
    expect((await deploy(cp, 'logfn', { runtime: 'node', handler: 'index.js', concurrency: 2, scale: { max: 1 }, env: { TAG: `N${T}` } }, join(FIXTURES, 'logs-node'))).status).toBe(201);
    expect((await invoke('logfn', `once S${T}`)).status).toBe(200);
    await waitFor(
      async () => {
        const sbs = ((await api(cp, 'GET', '/v1/sandboxes')).body as { sandboxes: { id: string }[] }).sandboxes;
        return !sbs.some((s) => s.id === oldSandbox) || undefined;
      },
      10_000,
      () => `sandbox ${oldSandbox} was not deleted`,
    );
    const r = await logs('logfn', `?callId=${before.callId}`);
    expect(r.body.lines.map((l) => [l.line, l.sandboxId])).toEqual([[`once R${T}`, oldSandbox]]);
  });

  it("the worker's own output carries no function output", () => {
    const out = worker.output();
    for (const text of [`start A${T}`, `module loaded M${T}`, `about to throw E${T}`, `direct D${T}`, `late L${T}`, `http got H${T}`, `http err H${T}`]) expect(out).not.toContain(text);
  });

  it('answers without a silent worker, naming it', async () => {
    const pid = worker.proc.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const r = await logs('logfn');
      expect(r.status).toBe(200);
      expect(r.body.lines).toEqual([]);
      expect(r.body.unanswered?.map((u) => u.node)).toEqual([workerName]);
      // generous: the per-worker timeout is a couple of seconds
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});
