import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng, type Rng } from '../src/policies/rng.js';
import { MAX_FRAME_BYTES } from '../src/protocol/codec.js';
import { CloseCode, PROTOCOL_VERSION, WORKER_PATH, type SandboxReport } from '../src/protocol/messages.js';
import { ownerCore } from '../src/protocol/shard.js';
import { FIXTURES, api, deploy, pidAlive, startControlPlane, startWorker, stopAll, waitFor, type CpHandle } from './helpers/cluster.js';
import { HandWorker, Socket, type Closed } from './helpers/hand-worker.js';
import { header, rawRequest } from './helpers/raw-http.js';

/**
 * Hostile frames from workers holding the real join token, on both kinds of
 * worker connection: the control link (WORKER_PATH on the public port) and
 * the data links (LINK_PATH on each scheduler core's port, named in the
 * welcome). Garbage, text frames, wrong field types, unknown `t`, frames on
 * the wrong kind of link, data-link handshakes naming the wrong core, session,
 * node or protocol, frames about calls and sandboxes that do not exist, a
 * frame over the size limit. Every bad frame must close its own connection
 * (4400, or 4426 for a wrong protocol version) and nothing else — except that
 * a data link closed after its linkWelcome ends its worker's session, so its
 * control link and other data links close too (1000). Every well-formed frame
 * about unknown things must be ignored (or answered: getBundle, a chain call,
 * a sandboxReady) with the connection kept. Reproduce with FUZZ_SEED=<printed
 * seed>; the plans also depend on the number of scheduler cores
 * (BATON_TEST_SCHEDULER_THREADS).
 */
const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const CONNECTIONS = Number(process.env['FUZZ_CONNECTIONS'] ?? 400);
const CONCURRENCY = 8;
const BOUND_MS = 5_000; // generous liveness bound for one step of one connection's exchange
const { badFrame: BAD, wrongVersion: VERSION, normal: NORMAL, replaced: REPLACED } = CloseCode;

// The same wire format as the codec, but able to encode anything at all.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
const pack = (v: unknown): Buffer => Buffer.from(packr.pack(v));

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)] as T;
}

/** A value of a random type, often the wrong one. */
function junk(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 8 : 11)) {
    case 0:
      return pick(rng, ['', 'x', 'ü😀', 'a'.repeat(200), '__proto__', 'constructor', 'hello']);
    case 1:
      return pick(rng, [0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 31, 599, 600, 99]);
    case 2:
      return pick(rng, [NaN, Infinity, -Infinity]);
    case 3:
      return rng.next() < 0.5;
    case 4:
      return null;
    case 5:
      return undefined;
    case 6:
      return new Uint8Array(rng.int(64));
    case 7:
      return BigInt('12345678901234567890');
    case 8:
      return Array.from({ length: rng.int(4) }, () => junk(rng, depth + 1));
    case 9:
      return { ...(JSON.parse('{"__proto__":{"polluted":true}}') as object), a: junk(rng, depth + 1) }; // an own __proto__ key
    default:
      return Object.fromEntries(Array.from({ length: rng.int(4) }, (_, i) => [pick(rng, ['t', 'sandboxId', 'callId', 'hash', 'session', 'core', `k${i}`]), junk(rng, depth + 1)]));
  }
}

const id = (rng: Rng): string => `fz-${rng.int(1e9).toString(36)}`;

type Frame = Record<string, unknown>;
/** What a frame may depend on that is known only once connected: the welcome's node id and session, the link's core. */
interface Ctx {
  nodeId: string;
  session: string;
  core: number;
}
/** Bytes to send, and the close code (and reason) they must bring. */
interface Sent {
  data: Buffer | string;
  binary: boolean;
  what: string;
  code: number;
  reason?: RegExp;
}
/** A bad frame, every random choice drawn when planned. */
type Bad = (c: Ctx) => Sent;
const bin = (f: Frame, what: string, code: number = BAD, reason?: RegExp): Sent => ({ data: pack(f), binary: true, what, code, ...(reason === undefined ? {} : { reason }) });

/** Harmless control-link frames (after hello): ignored, or answered (getBundle). */
function controlHarmless(rng: Rng): Frame {
  switch (rng.int(3)) {
    case 0:
      return { t: 'heartbeat', freeMemoryMb: pick(rng, [0, 1, 64, 1e9]), sandboxes: rng.int(5) };
    case 1:
      return { t: 'getBundle', hash: pick(rng, ['0'.repeat(64), id(rng), 'x'.repeat(128)]) };
    default:
      // an answer to a getLogs nobody asked
      return { t: 'logs', reqId: rng.int(2 ** 31), lines: rng.next() < 0.5 ? [] : [{ ts: Date.now(), sandboxId: id(rng), stream: 'stdout', line: 'fuzz' }] };
  }
}

/** Harmless data-link frames (after linkWelcome), about sandboxes and calls that do not exist; some are answered. */
function dataHarmless(rng: Rng, reqId: number): { frame: Frame; answer?: { t: 'delete'; sandboxId: string } | { t: 'callResult'; reqId: number } } {
  switch (rng.int(5)) {
    case 0: {
      // a sandbox the control plane never asked for: it says delete it
      const sandboxId = id(rng);
      return { frame: { t: 'sandboxReady', sandboxId, createMs: rng.int(1000) }, answer: { t: 'delete', sandboxId } };
    }
    case 1:
      return { frame: { t: 'sandboxFailed', sandboxId: id(rng), error: { code: pick(rng, ['sandbox_failed', 'nonsense', '']), message: 'fuzz' } } };
    case 2:
      return { frame: { t: 'sandboxGone', sandboxId: id(rng), reason: 'fuzz' } };
    case 3:
      return { frame: { t: 'result', callId: id(rng), sandboxId: id(rng), status: 100 + rng.int(500), headers: { 'x-a': 'b' }, body: new Uint8Array(rng.int(100)), execMs: rng.int(10) } };
    default:
      // a chain call from a call that is not running here: refused with chain_broken
      return { frame: chainCall(reqId, id(rng)), answer: { t: 'callResult', reqId } };
  }
}

const chainCall = (reqId: number, parentCallId: string): Frame => ({ t: 'call', reqId, parentCallId, function: 'hello', method: 'POST', path: '/', headers: {}, body: new Uint8Array(3) });

function helloFrame(rng: Rng, sandboxes: unknown[] = []): Frame {
  return { t: 'hello', protocol: PROTOCOL_VERSION, nodeId: `rogue-${id(rng)}`, name: `rogue-${rng.int(1000)}`, cores: 1 + rng.int(4), memoryMb: 64 + rng.int(1000), runtime: 'emulated', sandboxes };
}
const linkHello = (c: Ctx, sandboxes: unknown[] = []): Frame => ({ t: 'linkHello', protocol: PROTOCOL_VERSION, nodeId: c.nodeId, session: c.session, core: c.core, sandboxes });

/**
 * Generic ways to break a frame that would otherwise be accepted (`base`): each
 * must close the connection with 4400.
 */
function broken(rng: Rng, base: (c: Ctx) => Frame, unknownT: readonly unknown[]): Bad {
  switch (rng.int(7)) {
    case 0: {
      const bytes = Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256)).concat([0xc1]));
      return () => ({ data: bytes, binary: true, what: 'garbage bytes', code: BAD });
    }
    case 1:
      return (c) => ({ data: JSON.stringify(base(c)), binary: false, what: 'a text frame', code: BAD });
    case 2: {
      const v = junk(rng);
      return () => bin(v as Frame, 'msgpack that is not a frame');
    }
    case 3: {
      const t = pick(rng, unknownT);
      return (c) => bin({ ...base(c), t }, `unknown t ${JSON.stringify(t)}`);
    }
    case 4: {
      const draw = rng.int(1000);
      const v0 = junk(rng);
      return (c) => {
        const b = base(c);
        const keys = Object.keys(b).filter((k) => k !== 't');
        const k = keys[draw % keys.length]!;
        // a few junk values happen to be valid for some fields; make sure this one is not
        const v = typeof v0 === typeof b[k] && !Number.isNaN(v0) ? [v0] : v0;
        return bin({ ...b, [k]: v }, `${String(b['t'])}.${k} of the wrong type`);
      };
    }
    case 5: {
      const draw = rng.int(1000);
      return (c) => {
        const b = { ...base(c) };
        const keys = Object.keys(b).filter((k) => k !== 't');
        const k = keys[draw % keys.length]!;
        delete b[k];
        return bin(b, `${String(b['t'])} without ${k}`);
      };
    }
    default:
      return () => ({ data: Buffer.alloc(0), binary: true, what: 'an empty binary frame', code: BAD });
  }
}

/** A frame about a sandbox or a call, well formed: it belongs on a data link. */
function dataFrame(rng: Rng): Frame {
  return dataHarmless(rng, rng.int(1000)).frame;
}

/** A bad first frame on the control link, instead of hello. */
function badBeforeHello(rng: Rng): Bad {
  switch (rng.int(10)) {
    case 0: {
      const f = pick(rng, [() => controlHarmless(rng), () => dataFrame(rng), () => linkHello({ nodeId: id(rng), session: id(rng), core: 0 })])();
      return () => bin(f, `${String(f['t'])} before hello`);
    }
    case 1: {
      const protocol = pick(rng, [0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 2 ** 31]);
      const h = helloFrame(rng);
      return () => bin({ ...h, protocol }, `hello with protocol ${protocol}`, VERSION, /protocol version/);
    }
    default: {
      const h = helloFrame(rng);
      return broken(rng, () => h, ['welcome', 'create', 'invoke', 'bundle', 'linkWelcome', '', '__proto__', 'HELLO', 42, null]);
    }
  }
}

/** A bad frame on the control link after the welcome. */
function badAfterHello(rng: Rng): Bad {
  switch (rng.int(10)) {
    case 0: {
      const h = helloFrame(rng);
      return () => bin(h, 'a second hello');
    }
    case 1:
    case 2: {
      // well formed, but on the wrong kind of link
      const f = dataFrame(rng);
      return () => bin(f, `${String(f['t'])} on the control link`, BAD, /belongs on a data link/);
    }
    case 3:
      return (c) => bin(linkHello(c), 'linkHello on the control link', BAD, /belongs on a data link/);
    default: {
      const f = controlHarmless(rng);
      return broken(rng, () => f, ['welcome', 'create', 'invoke', 'bundle', 'linkWelcome', 'callResult', '', '__proto__', 'HEARTBEAT', 42, null]);
    }
  }
}

/** A bad first frame on a data link, instead of its linkHello. */
function badLinkFirst(rng: Rng): Bad {
  switch (rng.int(12)) {
    case 0: {
      const protocol = pick(rng, [0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1]);
      return (c) => bin({ ...linkHello(c), protocol }, `linkHello with protocol ${protocol}`, VERSION, /protocol version/);
    }
    case 1: {
      const shift = rng.int(1023);
      return (c) => bin({ ...linkHello(c), core: (c.core + 1 + shift) % 1024 }, 'linkHello naming another core', BAD, /reached core/);
    }
    case 2: {
      const nodeId = `rogue-${id(rng)}`;
      return (c) => bin({ ...linkHello(c), nodeId }, 'linkHello naming another node', BAD, /no worker/);
    }
    case 3: {
      const f = dataFrame(rng);
      return () => bin(f, `${String(f['t'])} before linkHello`, BAD, /expected linkHello first/);
    }
    case 4: {
      const f = pick(rng, [() => helloFrame(rng), () => controlHarmless(rng)])();
      return () => bin(f, `${String(f['t'])} on a data link before linkHello`, BAD, /expected linkHello first/);
    }
    default:
      return broken(rng, (c) => linkHello(c), ['welcome', 'linkWelcome', 'hello', 'create', 'invoke', 'callResult', '', '__proto__', 'LINKHELLO', 42, null]);
  }
}

/** A bad frame on a data link after its linkWelcome. */
function badLinkAfter(rng: Rng): Bad {
  switch (rng.int(10)) {
    case 0:
      return (c) => bin(linkHello(c), 'a second linkHello');
    case 1:
    case 2: {
      const f = pick(rng, [() => helloFrame(rng), () => controlHarmless(rng), () => ({ t: 'draining', timeoutMs: 1000 })])();
      return () => bin(f, `${String(f['t'])} on a data link`, BAD, /belongs on the control link/);
    }
    default: {
      const f = dataFrame(rng);
      return broken(rng, () => f, ['welcome', 'linkWelcome', 'create', 'delete', 'invoke', 'callResult', 'getLogs', '', '__proto__', 'RESULT', 42, null]);
    }
  }
}

interface Plan {
  i: number;
  /** A bad first frame on the control link instead of hello: nothing else follows. */
  before?: Bad;
  hello: Frame;
  control: Frame[];
  /** A refused data link first: to core `draw % cores`, a bad first frame instead of linkHello. */
  refused?: { draw: number; bad: Bad };
  /** Data links made: to every core, or to core `draw % cores`; reports of made-up sandboxes; a second link to a linked core; harmless frames. */
  linked?: { all: boolean; draw: number; reports: SandboxReport[]; dup: boolean; frames: { draw: number; h: ReturnType<typeof dataHarmless> }[] };
  end: { kind: 'close' } | { kind: 'control'; bad: Bad } | { kind: 'data'; draw: number; bad: Bad };
}

function plan(rng: Rng, i: number): Plan {
  const hello = helloFrame(rng);
  if (rng.next() < 0.25) return { i, before: badBeforeHello(rng), hello, control: [], end: { kind: 'close' } };
  const control = Array.from({ length: rng.int(6) }, () => controlHarmless(rng));
  const p: Plan = { i, hello, control, end: { kind: 'close' } };
  if (rng.next() < 0.65) {
    if (rng.next() < 0.45) p.refused = { draw: rng.int(1 << 16), bad: badLinkFirst(rng) };
    if (p.refused === undefined || rng.next() < 0.5) {
      const reports = rng.next() < 0.15 ? Array.from({ length: 1 + rng.int(2) }, () => ({ sandboxId: `sb-${id(rng)}`, functionKey: pick(rng, ['default/hello', 'default/nope', 'x']), version: pick(rng, [0, 1, 2]), incarnation: pick(rng, ['fi_x', 'fi_nope']), inflight: rng.int(3) })) : [];
      p.linked = { all: rng.next() < 0.35, draw: rng.int(1 << 16), reports, dup: rng.next() < 0.15, frames: Array.from({ length: rng.int(7) }, (_, j) => ({ draw: rng.int(1 << 16), h: dataHarmless(rng, i * 100 + j) })) };
    }
  }
  const r = rng.next();
  if (p.linked !== undefined && r < 0.4) p.end = { kind: 'data', draw: rng.int(1 << 16), bad: badLinkAfter(rng) };
  else if (r < (p.linked !== undefined ? 0.6 : 0.55)) p.end = { kind: 'control', bad: badAfterHello(rng) };
  return p;
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);
}

describe(`fuzz: hostile frames on the worker endpoints (FUZZ_SEED=${SEED})`, () => {
  let cp: CpHandle;
  const dirs: string[] = [];

  beforeAll(async () => {
    process.stdout.write(`fuzz-worker: seed ${SEED}, ${CONNECTIONS} connections (rerun with FUZZ_SEED=${SEED})\n`);
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    // one sandbox at most, kept warm: nothing is ever placed on a rogue that joined fully
    expect((await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js', scale: { max: 1, keepAlive: '10m' } }, join(FIXTURES, 'cp-hello'))).status).toBe(201);
    expect((await api(cp, 'POST', '/function/hello', 'warm')).text).toBe('hello warm');
  });
  afterAll(() => stopAll(dirs));

  it('closes only the connections a bad frame ends, ignores frames about unknown things, and stays up', { timeout: 120_000 }, async () => {
    const rng = createRng(SEED);
    const failures: string[] = [];
    const counts: Record<string, number> = {};
    const count = (k: string): void => {
      counts[k] = (counts[k] ?? 0) + 1;
    };
    /** Every connection made, to count the 4400 closes against the metric. */
    const sockets: Socket[] = [];

    // Connections that never say hello (linkHello) are closed by the handshake timeout (10 s): in the background.
    const silent = Array.from({ length: 3 }, () => new Socket(cp.url.replace(/^http/, 'ws') + WORKER_PATH, cp.joinToken));
    sockets.push(...silent);
    const quiet = new HandWorker(cp, 'rogue-quiet', { nodeId: 'rogue-quiet' });
    sockets.push(quiet.control);
    const welcome = await quiet.hello();
    const cores = welcome.links.length;
    const silentLinks = [0, 1].map((k) => new Socket(quiet.linkUrl(k % cores), cp.joinToken));
    // a linkHello naming a session nobody announced waits for its announcement, then times out the same way
    const strangers = [0, 1].map((k) => new Socket(quiet.linkUrl(k % cores), cp.joinToken));
    sockets.push(...silentLinks, ...strangers);
    for (const [k, s] of strangers.entries()) {
      await s.opened;
      s.send(pack(linkHello({ nodeId: quiet.nodeId, session: `ses_${id(rng)}`, core: k % cores })));
    }

    // a real worker keeps serving while the fuzz runs
    let fuzzing = true;
    let served = 0;
    const serving = (async () => {
      while (fuzzing) {
        const r = await api(cp, 'POST', '/function/hello', `during ${served}`).catch((e: unknown) => ({ status: 0, text: String(e) }));
        if (r.text !== `hello during ${served}`) failures.push(`a real call during the fuzz got ${r.status} ${r.text.slice(0, 200)}`);
        served++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const plans = Array.from({ length: CONNECTIONS }, (_, i) => plan(rng, i));

    const runOne = async (p: Plan): Promise<void> => {
      const fail = (why: string): void => {
        failures.push(`#${p.i} ${why}`);
      };
      /** `s` must close within the bound with one of `codes` (and a reason `reason` matches). */
      const closes = async (s: Socket, codes: number[], what: string, reason?: RegExp): Promise<void> => {
        const c = await within(s.closed, BOUND_MS);
        if (c === 'timeout') fail(`${what}: still open after ${BOUND_MS} ms`);
        else if (!codes.includes(c.code) || (reason !== undefined && !reason.test(c.reason))) fail(`${what}: closed with ${c.code} "${c.reason}", expected ${codes.join(' or ')}${reason === undefined ? '' : ` and ${String(reason)}`}`);
      };
      /** The control link answers a getBundle: every frame before it was read, and it is open. */
      let probes = 0;
      const controlAnswers = async (after: string): Promise<boolean> => {
        const hash = `probe-${p.i}-${probes++}`;
        hw.sendRaw('control', pack({ t: 'getBundle', hash }));
        try {
          const reply = await hw.next('bundle', (f) => f.hash === hash, BOUND_MS, 'control');
          if (reply.error?.code !== 'not_found') fail(`getBundle of an unknown hash answered ${JSON.stringify(reply)}`);
          return true;
        } catch (e) {
          fail(`control link after ${after}: ${(e as Error).message.slice(0, 300)}`);
          return false;
        }
      };
      /** A data link answers a chain call from an unknown call with chain_broken: every frame before it was read, and it is open. */
      const linkAnswers = async (core: number, after: string): Promise<boolean> => {
        const reqId = 1e9 + p.i * 100 + probes++;
        hw.sendRaw(core, pack(chainCall(reqId, `nobody-${p.i}`)));
        try {
          const reply = await hw.next('callResult', (f) => f.reqId === reqId, BOUND_MS, core);
          if (reply.status !== 502 || reply.error?.code !== 'chain_broken') fail(`a chain call from an unknown call answered ${JSON.stringify({ ...reply, body: undefined })}`);
          return true;
        } catch (e) {
          fail(`data link to core ${core} after ${after}: ${(e as Error).message.slice(0, 300)}`);
          return false;
        }
      };

      const hw = new HandWorker(cp, String(p.hello['name']), { nodeId: String(p.hello['nodeId']) });
      sockets.push(hw.control);
      try {
        await hw.control.opened;
      } catch (e) {
        fail(`could not connect: ${(e as Error).message}`);
        return;
      }
      try {
        if (p.before !== undefined) {
          const b = p.before({ nodeId: hw.nodeId, session: 'none', core: 0 });
          count(`control, before hello: ${b.what}`);
          hw.sendRaw('control', b.data, b.binary);
          await closes(hw.control, [b.code], `${b.what} before hello`, b.reason);
          return;
        }
        try {
          await hw.hello(p.hello);
        } catch (e) {
          fail(`valid hello not welcomed: ${(e as Error).message.slice(0, 300)}`);
          return;
        }
        const ctx = (core: number): Ctx => ({ nodeId: hw.welcome!.nodeId, session: hw.welcome!.session, core });
        for (const f of p.control) {
          count(`control, ignored: ${String(f['t'])}`);
          hw.sendRaw('control', pack(f));
        }
        if (!(await controlAnswers(`${p.control.map((f) => f['t']).join(', ')}`))) return;

        if (p.refused !== undefined) {
          const core = p.refused.draw % cores;
          const s = await hw.openLink(core);
          sockets.push(s);
          const b = p.refused.bad(ctx(core));
          count(`data link, first frame: ${b.what}`);
          s.send(b.data, b.binary);
          await closes(s, [b.code], `${b.what} on a data link`, b.reason);
          // the link was never the worker's: its control link is untouched
          if (!(await controlAnswers(`a refused data link (${b.what})`))) return;
        }

        const linked: number[] = [];
        if (p.linked !== undefined) {
          const l = p.linked;
          const want = l.all ? Array.from({ length: cores }, (_, k) => k) : [l.draw % cores];
          for (const core of want) {
            // made-up sandboxes are never adopted: the linkWelcome names them all to drop
            const reports = l.reports.length > 0 && core === want[0] ? l.reports : [];
            try {
              const lw = await hw.linkHello(core, { sandboxes: reports });
              if (lw.core !== core || [...lw.drop].sort().join() !== reports.map((r) => r.sandboxId).sort().join()) fail(`linkWelcome ${JSON.stringify(lw)} for core ${core} reporting ${JSON.stringify(reports)}`);
            } catch (e) {
              fail(`valid linkHello to core ${core} not welcomed: ${(e as Error).message.slice(0, 300)}`);
              return;
            }
            sockets.push(hw.socket(core));
            linked.push(core);
          }
          count(l.all ? 'data links: all cores' : 'data links: one core');
          if (l.dup) {
            // a second link to a linked core is refused; the first stays
            const core = linked[0]!;
            const dup = new Socket(hw.linkUrl(core), cp.joinToken);
            sockets.push(dup);
            await dup.opened;
            dup.send(pack(linkHello(ctx(core))));
            count('data link: a second link to a core');
            await closes(dup, [REPLACED], 'a second data link to a core', /already has a data link/);
          }
          for (const { draw, h } of l.frames) {
            count(`data link, ignored: ${String(h.frame['t'])}`);
            hw.sendRaw(linked[draw % linked.length]!, pack(h.frame));
          }
          for (const core of linked) if (!(await linkAnswers(core, `${l.frames.map((f) => f.h.frame['t']).join(', ')}`))) return;
          // the answers came before the probe's, on the link the frame went on
          for (const { draw, h } of l.frames) {
            const a = h.answer;
            const core = linked[draw % linked.length]!;
            if (a === undefined) continue;
            const got = hw.frames.some((r) => r.link === core && (a.t === 'delete' ? r.frame.t === 'delete' && r.frame.sandboxId === a.sandboxId : r.frame.t === 'callResult' && r.frame.reqId === a.reqId && r.frame.error?.code === 'chain_broken'));
            if (!got) fail(`${String(h.frame['t'])} on core ${core} was not answered with ${a.t}`);
          }
          if (!(await controlAnswers('frames on its data links'))) return;
        }

        const others = (except: number | 'control'): Socket[] => [hw.control, ...linked.map((k) => hw.socket(k))].filter((s) => s !== (except === 'control' ? hw.control : hw.socket(except)));
        if (p.end.kind === 'control') {
          const b = p.end.bad(ctx(0));
          count(`control, after hello: ${b.what}`);
          hw.sendRaw('control', b.data, b.binary);
          await closes(hw.control, [b.code], `${b.what} after hello`, b.reason);
          // the session ended: its data links go too
          for (const s of others('control')) await closes(s, [NORMAL], `a data link after ${b.what} on the control link`);
        } else if (p.end.kind === 'data') {
          const core = linked[p.end.draw % linked.length]!;
          const b = p.end.bad(ctx(core));
          count(`data link, after linkWelcome: ${b.what}`);
          hw.sendRaw(core, b.data, b.binary);
          await closes(hw.socket(core), [b.code], `${b.what} on a data link`, b.reason);
          // a welcomed link lost ends the session: the control link and the other data links close (expected)
          for (const s of others(core)) await closes(s, [NORMAL], `${s === hw.control ? 'the control link' : 'another data link'} after ${b.what} on a data link`);
        } else {
          const mine = [hw.control, ...linked.map((k) => hw.socket(k))];
          if (!mine.every((s) => s.open)) fail(`a link closed though no bad frame was sent: ${JSON.stringify(mine.map((s) => s.closedWith))}`);
          hw.close();
          for (const s of others('control').concat(hw.control)) await within(s.closed, BOUND_MS);
        }
        if (hw.undecodable.length > 0) fail(`undecodable frames from the control plane: ${hw.undecodable.slice(0, 3).join('; ')}`);
      } finally {
        hw.close();
      }
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < plans.length) await runOne(plans[next++]!);
      }),
    );

    // a frame over the size limit on each kind of link, before and after its handshake: that connection is closed
    const oversize = async (what: string, s: Socket, also: Socket[] = []): Promise<void> => {
      s.send(Buffer.alloc(MAX_FRAME_BYTES + 1));
      const c = await within(s.closed, 30_000);
      count('oversize frame');
      if (c === 'timeout') failures.push(`oversize frame (${what}): still open`);
      else if (c.code !== 1009 && c.code !== 1006) failures.push(`oversize frame (${what}): closed with ${c.code} ${c.reason}`);
      for (const o of also) if ((await within(o.closed, BOUND_MS)) === 'timeout') failures.push(`oversize frame (${what}): its worker's control link stayed open`);
    };
    for (const stage of ['before hello', 'after hello', 'before linkHello', 'after linkWelcome'] as const) {
      const hw = new HandWorker(cp, `rogue-big-${stage}`, { nodeId: `rogue-big-${id(rng)}` });
      sockets.push(hw.control);
      await hw.control.opened;
      if (stage === 'before hello') await oversize(stage, hw.control);
      else if (stage === 'after hello') {
        await hw.hello();
        await oversize(stage, hw.control);
      } else {
        await hw.hello();
        const core = rng.int(cores);
        if (stage === 'after linkWelcome') await hw.linkHello(core);
        else await hw.openLink(core);
        sockets.push(hw.socket(core));
        // only a welcomed link belongs to the session: losing it loses the control link too
        await oversize(stage, hw.socket(core), stage === 'after linkWelcome' ? [hw.control] : []);
        if (stage === 'before linkHello' && !hw.control.open) failures.push(`oversize frame (${stage}): the control link closed too`);
      }
      hw.close();
    }

    const expectTimeout = async (s: Socket, what: string, reason: RegExp): Promise<void> => {
      const c: Closed | 'timeout' = await within(s.closed, 30_000);
      if (c === 'timeout' || c.code !== BAD || !reason.test(c.reason)) failures.push(`${what}: ${JSON.stringify(c)}`);
    };
    for (const s of silent) await expectTimeout(s, 'silent control link', /no hello/);
    for (const s of silentLinks) await expectTimeout(s, 'silent data link', /no linkHello/);
    for (const s of strangers) await expectTimeout(s, 'data link of an unknown session', /./);
    // none of its links was ever its own: the quiet worker's control link is still up
    if (!quiet.control.open) failures.push(`the quiet worker's control link closed: ${JSON.stringify(quiet.control.closedWith)}`);
    quiet.close();
    fuzzing = false;
    await serving;

    process.stdout.write(`fuzz-worker: seed ${SEED}, ${cores} scheduler cores, ${served} real calls meanwhile: ${JSON.stringify(Object.fromEntries(Object.entries(counts).sort()))}\n`);
    if (failures.length > 0) process.stdout.write(`fuzz-worker: ${failures.length} failures (seed ${SEED}):\n  ${failures.slice(0, 15).join('\n  ')}\n`);
    expect(failures.slice(0, 5), `seed ${SEED}`).toEqual([]);

    // afterwards: alive, healthy, no fault caught by the process guard, and real calls work
    expect(cp.proc.exitCode).toBeNull();
    expect(pidAlive(cp.proc.pid!)).toBe(true);
    expect((await api(cp, 'GET', '/healthz')).status).toBe(200);
    expect((await api(cp, 'POST', '/function/hello', 'after the fuzz')).text).toBe('hello after the fuzz');
    // every connection has closed by now: each 4400 seen was counted once, on whichever thread sent it
    await Promise.all(sockets.map((s) => within(s.closed, BOUND_MS)));
    const seen = sockets.filter((s) => s.closedWith?.code === BAD).length;
    expect(seen).toBeGreaterThan(CONNECTIONS / 4);
    const metrics = (await api(cp, 'GET', '/metrics')).text;
    expect(Number(/baton_worker_bad_frames_total (\d+)/.exec(metrics)?.[1])).toBe(seen);
    expect(metrics).toMatch(/baton_process_faults_total\{kind="uncaught_exception"\} 0/);
    expect(metrics).toMatch(/baton_process_faults_total\{kind="unhandled_rejection"\} 0/);
    expect(cp.output()).not.toMatch(/error handling a (worker )?frame|internal error|uncaughtException|unhandledRejection/);
    await waitFor(
      async () => ((await api(cp, 'GET', '/v1/nodes')).body as { nodes: { name: string; state: string }[] }).nodes.every((n) => !(n.name.startsWith('rogue-') && n.state === 'ready')) || undefined,
      5_000,
      () => 'a rogue worker is still ready',
    );
  });

  it('a worker\'s answer cannot split the HTTP response: unsafe headers dropped, its Date dropped, a 1xx becomes 502', { timeout: 60_000 }, async () => {
    // a control plane whose only worker is ours, so every sandbox and call lands on it
    const lone = await startControlPlane();
    dirs.push(lone.dataDir);
    expect((await deploy(lone, 'evil', { runtime: 'http', command: ['/nonexistent/evil'] })).status).toBe(201);
    const rogue = new HandWorker(lone, 'rogue-evil');
    const answers: { status: number; headers: Record<string, string>; body: string }[] = [
      { status: 200, headers: { 'x-ok': 'fine', 'X-Upper': 'kept', 'x-split': 'a\r\nset-cookie: pwned=1', 'x-nul': 'a\0b', 'bad name': 'v', 'x-evil\r\nset-cookie': 'pwned=2', Date: 'Thu, 01 Jan 1970 00:00:00 GMT' }, body: 'ok' },
      { status: 101, headers: { upgrade: 'websocket' }, body: 'switch' },
    ];
    // answered on the data link the create / invoke came on
    rogue.onFrame = ({ frame: f }) => {
      if (f.t === 'create') rogue.send({ t: 'sandboxReady', sandboxId: f.sandboxId, createMs: 1 });
      if (f.t === 'invoke') {
        const a = answers.shift()!;
        rogue.send({ t: 'result', callId: f.callId, sandboxId: f.sandboxId, status: a.status, headers: a.headers, body: Buffer.from(a.body), execMs: 1 });
      }
    };
    let seen: string | undefined;
    const state = async (): Promise<string | undefined> => (seen = ((await api(lone, 'GET', '/v1/nodes')).body as { nodes: { name: string; state: string }[] }).nodes.find((n) => n.name === 'rogue-evil')?.state);
    const { links } = await rogue.hello({ runtime: 'process' });
    // not placed on until every scheduler core has its data link
    for (const { core } of links.slice(1)) await rogue.linkHello(core);
    await new Promise((r) => setTimeout(r, 300));
    expect(await state()).toBe('joining');
    await rogue.linkHello(links[0]!.core);
    await waitFor(async () => (await state()) === 'ready' || undefined, 10_000, () => `the rogue is ${seen}`);

    const port = Number(new URL(lone.url).port);
    const call = `POST /function/evil HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${lone.apiKey}\r\nContent-Length: 0\r\n\r\n`;
    const first = await rawRequest(port, call, { expect: 1, timeoutMs: 10_000 });
    expect(first.garbled).toBeUndefined();
    const ok = first.responses[0]!;
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toBe('ok');
    expect(header(ok, 'x-ok')).toEqual(['fine']);
    expect(header(ok, 'x-upper')).toEqual(['kept']);
    expect(header(ok, 'set-cookie')).toEqual([]);
    expect(ok.headers.map(([k]) => k)).not.toEqual(expect.arrayContaining(['x-split', 'x-nul', 'bad name']));
    expect(header(ok, 'date')).toHaveLength(1);
    expect(header(ok, 'date')[0]).not.toContain('1970');

    const second = await rawRequest(port, call, { expect: 1, timeoutMs: 10_000 });
    const switched = second.responses[0]!;
    expect(switched.status).toBe(502);
    expect(JSON.parse(switched.body.toString())).toMatchObject({ error: { code: 'function_error' } });
    // the sandbox and its calls went on the data link of the core that owns the function
    expect(new Set(rogue.frames.filter((r) => r.frame.t === 'create' || r.frame.t === 'invoke').map((r) => r.link))).toEqual(new Set([ownerCore('default/evil', links.length)]));
    expect(rogue.up()).toBe(true);
    rogue.close();
  });
});
