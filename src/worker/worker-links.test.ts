import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { silentLogger } from '../common/logger.js';
import { decodeWorkerFrame, encodeFrame } from '../protocol/codec.js';
import { CloseCode, LINK_PATH, PROTOCOL_VERSION, WORKER_PATH, type ControlFrame, type SandboxSpec, type WorkerFrame } from '../protocol/messages.js';
import { ownerCore } from '../protocol/shard.js';
import { startWorker, type WorkerDaemon } from './worker-daemon.js';

/**
 * The worker side of the data links, against a fake control plane: a control
 * endpoint and two scheduler cores' link endpoints, speaking the wire format.
 */

const TOKEN = 'test-join-token';
const NODE = 'node-links-1';
const EXEC_MS = 400;
const WAIT_MS = 3000;

type Of<T extends WorkerFrame['t']> = Extract<WorkerFrame, { t: T }>;

/** One connection from the worker, as the fake control plane sees it. */
class Peer {
  private readonly frames: WorkerFrame[] = [];
  private wake: (() => void)[] = [];
  /** Every frame received, in order (none removed). */
  readonly seen: WorkerFrame[] = [];
  readonly closed: Promise<number>;

  constructor(
    readonly ws: WebSocket,
    readonly authorization: string | undefined,
  ) {
    ws.on('message', (data: Buffer) => {
      const f = decodeWorkerFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.frames.push(f);
      this.seen.push(f);
      for (const w of this.wake.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  /** The first frame not taken yet of type `t` (and matching `pred`). */
  async next<T extends WorkerFrame['t']>(t: T, pred: (f: Of<T>) => boolean = () => true): Promise<Of<T>> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const i = this.frames.findIndex((f) => f.t === t && pred(f as Of<T>));
      if (i >= 0) return this.frames.splice(i, 1)[0] as Of<T>;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${t}" frame within ${WAIT_MS} ms (got: ${this.seen.map((f) => f.t).join(', ')})`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  has(t: WorkerFrame['t'], pred: (f: WorkerFrame) => boolean = () => true): boolean {
    return this.seen.some((f) => f.t === t && pred(f));
  }

  send(f: ControlFrame): void {
    this.ws.send(encodeFrame(f));
  }
}

/** A WebSocket endpoint of the fake control plane. */
class Endpoint {
  private readonly pending: Peer[] = [];
  private wake: (() => void)[] = [];

  private constructor(
    readonly wss: WebSocketServer,
    readonly port: number,
  ) {
    wss.on('connection', (ws, req) => {
      this.pending.push(new Peer(ws, req.headers.authorization));
      for (const w of this.wake.splice(0)) w();
    });
  }

  static async start(path: string, refuse?: number): Promise<Endpoint> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path, ...(refuse === undefined ? {} : { verifyClient: (_info: unknown, cb: (ok: boolean, code?: number) => void) => cb(false, refuse) }) });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const addr = wss.address();
    if (addr === null || typeof addr === 'string') throw new Error('expected a TCP address');
    return new Endpoint(wss, addr.port);
  }

  /** The next connection from the worker. */
  async accept(): Promise<Peer> {
    const deadline = Date.now() + WAIT_MS;
    while (this.pending.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no connection on port ${this.port} within ${WAIT_MS} ms`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
    return this.pending.shift() as Peer;
  }

  get waiting(): number {
    return this.pending.length;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}

function spec(functionKey: string): SandboxSpec {
  return { functionKey, version: 1, incarnation: `inc-${functionKey}`, runtime: 'node', env: {}, concurrency: 4, timeoutMs: 5000, bundleHash: '', priceClass: 'standard' };
}

function invoke(callId: string, sandboxId: string): ControlFrame {
  return { t: 'invoke', callId, sandboxId, method: 'GET', path: '/', headers: {}, body: new Uint8Array(), timeoutMs: 5000, priceClass: 'standard' };
}

/** A function key owned by `core` of `cores`. */
function keyOwnedBy(core: number, cores: number): string {
  for (let i = 0; ; i++) if (ownerCore(`links/fn-${i}`, cores) === core) return `links/fn-${i}`;
}

const ids = (xs: { sandboxId: string }[]): string[] => xs.map((x) => x.sandboxId).sort();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('worker data links', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(refuseLinks?: number): Promise<{ cp: Endpoint; cores: Endpoint[]; worker: WorkerDaemon }> {
    const cp = await Endpoint.start(WORKER_PATH);
    const cores = [await Endpoint.start(LINK_PATH, refuseLinks), await Endpoint.start(LINK_PATH, refuseLinks)];
    cleanup.push(() => cp.close(), ...cores.map((c) => () => c.close()));
    const stateDir = mkdtempSync(join(tmpdir(), 'baton-links-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const worker = await startWorker({
      controlPlane: `ws://127.0.0.1:${cp.port}`,
      joinToken: TOKEN,
      stateDir,
      runtime: 'emulated',
      logger: silentLogger(),
      nodeId: NODE,
      name: 'links-test',
      cores: 2,
      memoryMb: 1024,
      emulated: { createMs: 0, execMs: EXEC_MS, jitter: 0 },
      reconnect: { initialMs: 20, maxMs: 100 },
      drainTimeoutMs: 1000,
      ...(refuseLinks === undefined ? {} : { exitOnFatal: true }),
    });
    cleanup.push(() => worker.stop());
    return { cp, cores, worker };
  }

  function welcome(session: string, cores: Endpoint[], drop: string[] = []): ControlFrame {
    return { t: 'welcome', protocol: PROTOCOL_VERSION, nodeId: NODE, heartbeatMs: 60_000, maxResponseBytes: 1 << 20, classes: ['standard'], drop, session, links: cores.map((c, core) => ({ core, port: c.port })) };
  }

  it('routes frames by owner core, holds them until linkWelcome, rejoins when a link drops, and drops what linkWelcome says', async () => {
    const { cp, cores, worker } = await setup();
    const key0 = keyOwnedBy(0, 2);
    const key1 = keyOwnedBy(1, 2);

    // ---- session 1: hello, welcome, a link per core with its linkHello
    const ctl1 = await cp.accept();
    expect(ctl1.authorization).toBe(`Bearer ${TOKEN}`);
    const hello1 = await ctl1.next('hello');
    expect(hello1).toMatchObject({ protocol: PROTOCOL_VERSION, nodeId: NODE, sandboxes: [] });
    ctl1.send(welcome('session-1', cores));
    const links1 = await Promise.all(cores.map((c) => c.accept()));
    for (const [core, link] of links1.entries()) {
      expect(link.authorization).toBe(`Bearer ${TOKEN}`);
      expect(await link.next('linkHello')).toEqual({ t: 'linkHello', protocol: PROTOCOL_VERSION, nodeId: NODE, session: 'session-1', core, sandboxes: [] });
    }
    const [l0, l1] = links1 as [Peer, Peer];
    l0.send({ t: 'linkWelcome', core: 0, drop: [] });
    await sleep(50);
    expect(worker.state).toBe('connecting'); // core 1 has not welcomed its link yet
    l1.send({ t: 'linkWelcome', core: 1, drop: [] });
    await until(() => worker.state === 'running', 'the worker to join');

    // ---- sandboxes are announced on their owner core's link
    l0.send({ t: 'create', sandboxId: 'sb-a', spec: spec(key0) });
    l1.send({ t: 'create', sandboxId: 'sb-b', spec: spec(key1) });
    l1.send({ t: 'create', sandboxId: 'sb-b2', spec: spec(key1) });
    await l0.next('sandboxReady', (f) => f.sandboxId === 'sb-a');
    await l1.next('sandboxReady', (f) => f.sandboxId === 'sb-b');
    await l1.next('sandboxReady', (f) => f.sandboxId === 'sb-b2');
    expect(l0.has('sandboxReady', (f) => f.t === 'sandboxReady' && f.sandboxId !== 'sb-a')).toBe(false);
    expect(l1.has('sandboxReady', (f) => f.t === 'sandboxReady' && f.sandboxId === 'sb-a')).toBe(false);

    // ---- a call's result comes back on the link it was invoked on
    l0.send(invoke('call-1', 'sb-a'));
    const r1 = await l0.next('result', (f) => f.callId === 'call-1');
    expect(r1).toMatchObject({ sandboxId: 'sb-a', status: 200 });
    expect(l1.has('result')).toBe(false);
    expect(ctl1.has('result') || ctl1.has('sandboxReady')).toBe(false);

    // ---- a call on core 1 is running when core 0's link drops: the worker rejoins
    l1.send(invoke('call-2', 'sb-b'));
    const invokedAt = Date.now();
    await sleep(30);
    l0.ws.close(CloseCode.normal, 'core going away');
    expect(await l1.closed).toBeGreaterThan(0);
    await ctl1.closed;

    const ctl2 = await cp.accept();
    const hello2 = await ctl2.next('hello');
    expect(ids(hello2.sandboxes)).toEqual(['sb-a', 'sb-b', 'sb-b2']);
    ctl2.send(welcome('session-2', cores));
    const links2 = await Promise.all(cores.map((c) => c.accept()));
    const [m0, m1] = links2 as [Peer, Peer];
    const lh0 = await m0.next('linkHello');
    const lh1 = await m1.next('linkHello');
    expect(lh0).toMatchObject({ session: 'session-2', core: 0, nodeId: NODE });
    expect(lh1).toMatchObject({ session: 'session-2', core: 1, nodeId: NODE });
    expect(ids(lh0.sandboxes)).toEqual(['sb-a']);
    expect(ids(lh1.sandboxes)).toEqual(['sb-b', 'sb-b2']);
    // call-2 was running when core 1's linkHello was made
    expect(lh1.sandboxes.find((s) => s.sandboxId === 'sb-b')?.inflight).toBe(1);

    // call-2 ends before core 1 welcomes the link: its result is held, not sent, not lost
    await sleep(Math.max(0, invokedAt + EXEC_MS + 150 - Date.now()));
    expect(m1.has('result')).toBe(false);
    m0.send({ t: 'linkWelcome', core: 0, drop: [] });
    m1.send({ t: 'linkWelcome', core: 1, drop: ['sb-b2'] });
    const r2 = await m1.next('result', (f) => f.callId === 'call-2');
    expect(r2).toMatchObject({ sandboxId: 'sb-b', status: 200 });
    expect(m0.has('result')).toBe(false);
    await until(() => worker.state === 'running', 'the worker to rejoin');
    await until(() => worker.sandboxCount === 2, 'sb-b2 to be deleted');

    // ---- the dropped sandbox is gone from the next reports
    ctl2.ws.close(CloseCode.normal, 'control plane restarting');
    expect(await m0.closed).toBeGreaterThan(0);
    await m1.closed;
    const ctl3 = await cp.accept();
    const hello3 = await ctl3.next('hello');
    expect(ids(hello3.sandboxes)).toEqual(['sb-a', 'sb-b']);
    expect(hello3.sandboxes.every((s) => s.inflight === 0)).toBe(true);
    ctl3.send(welcome('session-3', cores));
    const links3 = await Promise.all(cores.map((c) => c.accept()));
    const [n0, n1] = links3 as [Peer, Peer];
    expect(ids((await n0.next('linkHello', (f) => f.session === 'session-3' && f.core === 0)).sandboxes)).toEqual(['sb-a']);
    expect(ids((await n1.next('linkHello', (f) => f.session === 'session-3' && f.core === 1)).sandboxes)).toEqual(['sb-b']);
    n0.send({ t: 'linkWelcome', core: 0, drop: [] });
    n1.send({ t: 'linkWelcome', core: 1, drop: [] });
    await until(() => worker.state === 'running', 'the worker to join session 3');

    // ---- a data-link frame on the control link is a protocol error: everything is closed and joined again
    ctl3.send(invoke('call-3', 'sb-a'));
    expect(await ctl3.closed).toBe(CloseCode.badFrame);
    await Promise.all([n0.closed, n1.closed]);
    const ctl4 = await cp.accept();
    expect(ids((await ctl4.next('hello')).sandboxes)).toEqual(['sb-a', 'sb-b']);
    expect(n0.has('result')).toBe(false);
  }, 10_000);

  it('stops when a core rejects the join token on the link upgrade (exitOnFatal)', async () => {
    const { cp, cores, worker } = await setup(401);
    const ctl = await cp.accept();
    await ctl.next('hello');
    ctl.send(welcome('session-x', cores));
    await worker.whenStopped();
    expect(worker.state).toBe('stopped');
    expect(await ctl.closed).toBeGreaterThan(0);
  }, 10_000);
});
