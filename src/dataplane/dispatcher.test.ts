import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { compileFunctionSpec } from '../common/function-spec.js';
import { silentLogger } from '../common/logger.js';
import { PriceClassSet } from '../policies/price-classes.js';
import type { ControlFrame } from '../protocol/messages.js';
import type { FunctionRecord } from '../storage/store.js';
import { Dispatcher } from './dispatcher.js';
import type { FunctionRuntime } from './function-runtime.js';
import type { Call, InvocationResult, NodeState, SandboxState } from './types.js';

const classes = new PriceClassSet();

function record(over: Record<string, unknown> = {}, version = 1): FunctionRecord {
  return {
    namespace: 'default',
    name: 'f',
    version,
    incarnation: 'fi_1',
    spec: compileFunctionSpec({ runtime: 'http', command: ['x'], timeout: '1s', ...over }),
    source: {},
    bundleHash: '',
    bundleBytes: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}

function node(id: string, sent: ControlFrame[]): NodeState {
  return {
    id,
    name: id,
    status: 'ready',
    lastHeartbeat: 0,
    sandboxes: new Map(),
    inflight: 0,
    bundles: new Set(),
    busyByRank: [],
    busy: 0,
    send: (f) => {
      sent.push(f);
      return true;
    },
  };
}

describe('Dispatcher', () => {
  let now = 0;
  let sent: ControlFrame[];
  let n1: NodeState;
  let d: Dispatcher;
  let workersExpected = true;
  const results: InvocationResult[] = [];
  /** n1's busy cores each time a sandbox was placed. */
  const busyAtPlacement: number[] = [];
  /** Sandboxes reported gone (onSandboxGone). */
  const gone: string[] = [];
  const req = { method: 'POST', path: '/', headers: {}, body: new Uint8Array(), priceClass: 'standard' };
  const reply = (r: InvocationResult): void => void results.push(r);
  const frames = (t: ControlFrame['t']): ControlFrame[] => sent.filter((f) => f.t === t);
  const answer = (callId: string, status = 200): void =>
    d.result(n1, { t: 'result', callId, sandboxId: (sent.find((f) => f.t === 'invoke' && f.callId === callId) as { sandboxId: string } | undefined)?.sandboxId ?? '?', status, headers: {}, body: new Uint8Array([1]), execMs: 1 });

  beforeEach(() => {
    vi.useFakeTimers();
    now = 0;
    sent = [];
    results.length = 0;
    busyAtPlacement.length = 0;
    gone.length = 0;
    n1 = node('n1', sent);
    workersExpected = true;
    d = new Dispatcher({
      clock: { now: () => now, wallNow: () => now },
      classes,
      log: silentLogger(),
      maxQueuePerFunction: 3,
      maxWaitMs: 5000,
      hooks: {
        place: () => {
          busyAtPlacement.push(n1.busy);
          return n1.status === 'ready' ? { node: n1, core: -1 } : undefined;
        },
        awaitingWorkers: () => workersExpected,
        onSandboxGone: (sb) => void gone.push(sb.id),
      },
    });
  });
  afterEach(() => {
    // the scale counter always equals a count of the function's live sandboxes
    for (const fn of d.functions.values()) {
      let n = 0;
      for (const sb of fn.sandboxes) if (fn.countsToward(sb)) n++;
      expect(fn.scale, fn.key).toBe(n);
    }
    vi.useRealTimers();
  });

  it('cold-starts from zero, then serves warm calls on the same sandbox', () => {
    const fn = d.upsertFunction(record());
    d.invoke(fn, req, reply);
    expect(frames('create')).toHaveLength(1);
    expect(fn.queued).toBe(1);
    const sbId = (frames('create')[0] as { sandboxId: string }).sandboxId;
    now = 40;
    d.sandboxReady(n1, sbId, 30);
    const inv = frames('invoke');
    expect(inv).toHaveLength(1);
    answer((inv[0] as { callId: string }).callId);
    expect(results[0]?.status).toBe(200);
    expect(results[0]?.timing.coldMs).toBe(30);
    expect(results[0]?.timing.schedMs).toBe(10);
    d.invoke(fn, req, reply);
    expect(frames('create')).toHaveLength(1);
    expect(frames('invoke')).toHaveLength(2);
  });

  it('late binding: the first freed slot takes the oldest waiter, none is lost', () => {
    const fn = d.upsertFunction(record({ concurrency: 1, scale: { max: 1 } }));
    for (let i = 0; i < 3; i++) d.invoke(fn, req, reply);
    const sbId = (frames('create')[0] as { sandboxId: string }).sandboxId;
    d.sandboxReady(n1, sbId, 5);
    for (let i = 0; i < 3; i++) {
      const inv = frames('invoke');
      expect(inv).toHaveLength(i + 1);
      answer((inv[i] as { callId: string }).callId);
    }
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(fn.queued).toBe(0);
    expect(fn.inflight).toBe(0);
  });

  it('a call killed for memory takes its sandbox out at once: the next queued call gets a new sandbox, not the killed one', () => {
    const fn = d.upsertFunction(record({ concurrency: 1, scale: { max: 2 } }));
    d.invoke(fn, req, reply);
    d.invoke(fn, req, reply);
    const first = (frames('create')[0] as { sandboxId: string }).sandboxId;
    d.sandboxReady(n1, first, 1);
    const inv = frames('invoke')[0] as { callId: string; sandboxId: string };
    // the worker evicted the sandbox under memory pressure: the call's answer comes before its sandboxGone
    d.result(n1, { t: 'result', callId: inv.callId, sandboxId: inv.sandboxId, status: 503, headers: {}, body: new Uint8Array(), execMs: 1, error: { code: 'memory_pressure', message: 'evicted' } });
    expect(results[0]?.status).toBe(503);
    expect(frames('invoke')).toHaveLength(1);
    expect(frames('delete').map((f) => (f as { sandboxId: string }).sandboxId)).toEqual([first]);
    const creates = frames('create').map((f) => (f as { sandboxId: string }).sandboxId);
    expect(creates).toHaveLength(2);
    d.sandboxReady(n1, creates[1] as string, 1);
    expect((frames('invoke')[1] as { sandboxId: string }).sandboxId).toBe(creates[1]);
    // the late sandboxGone of the killed one changes nothing
    const lost = d.sandboxOn(n1, first);
    expect(lost).toBeUndefined();
  });

  it('queued calls of a higher price class go first once they have waited comparably (price × wait)', () => {
    const fn = d.upsertFunction(record({ scale: { max: 1 } }));
    d.invoke(fn, req, reply);
    d.sandboxReady(n1, (frames('create')[0] as { sandboxId: string }).sandboxId, 1);
    d.invoke(fn, { ...req, priceClass: 'batch' }, reply); // waits from t=0
    now = 10;
    d.invoke(fn, { ...req, priceClass: 'critical' }, reply); // waits from t=10
    now = 30; // batch 0.5 × 30 = 15 < critical 2 × 20 = 40
    answer((frames('invoke')[0] as { callId: string }).callId);
    const second = frames('invoke')[1] as { priceClass: string };
    expect(second.priceClass).toBe('critical');
  });

  it('a full queue answers 503 with Retry-After', () => {
    const fn = d.upsertFunction(record());
    for (let i = 0; i < 4; i++) d.invoke(fn, req, reply);
    expect(results).toHaveLength(1);
    expect(results[0]?.status).toBe(503);
    expect(results[0]?.headers['retry-after']).toBe('1');
  });

  it('a queued call times out with 504 after the wait limit and is skipped when a slot frees', () => {
    const fn = d.upsertFunction(record());
    d.invoke(fn, req, reply);
    vi.advanceTimersByTime(4999);
    expect(results).toHaveLength(0);
    vi.advanceTimersByTime(2);
    expect(results[0]?.status).toBe(504);
    expect(results[0]?.error?.message).toMatch(/waited \d+ ms for a sandbox.*has been starting/);
    expect(fn.queued).toBe(0);
    d.sandboxReady(n1, (frames('create')[0] as { sandboxId: string }).sandboxId, 1);
    expect(frames('invoke')).toHaveLength(0);
    expect(fn.freeCount).toBe(1);
  });

  it('a failed sandbox start fails the waiting calls with the worker\'s reason', () => {
    const fn = d.upsertFunction(record());
    d.invoke(fn, req, reply);
    d.sandboxFailed(n1, (frames('create')[0] as { sandboxId: string }).sandboxId, { code: 'sandbox_failed', message: 'command not found' });
    expect(results[0]?.status).toBe(502);
    expect(results[0]?.error?.message).toContain('command not found');
  });

  it('losing a node fails its in-flight calls and restarts a sandbox for waiters elsewhere', () => {
    const fn = d.upsertFunction(record({ scale: { max: 1 } }));
    d.invoke(fn, req, reply);
    d.sandboxReady(n1, (frames('create')[0] as { sandboxId: string }).sandboxId, 1);
    d.invoke(fn, req, reply);
    d.nodeLost(n1, 'gone');
    expect(results[0]?.status).toBe(502);
    // the queued call caused a new creation
    expect(frames('create')).toHaveLength(2);
    expect(d.sandboxCount).toBe(1);
  });

  it('without workers after the grace period, calls fail fast with 503', () => {
    const d2 = new Dispatcher({ clock: { now: () => 0, wallNow: () => 0 }, classes, log: silentLogger(), maxQueuePerFunction: 3, hooks: { place: () => undefined, awaitingWorkers: () => false } });
    const fn = d2.upsertFunction(record());
    d2.invoke(fn, req, reply);
    expect(results[0]?.status).toBe(503);
    expect(results[0]?.error?.code).toBe('no_capacity');
  });

  it('adopts reported sandboxes of the current version only', () => {
    const fn = d.upsertFunction(record({}, 3));
    expect(d.adopt(n1, { sandboxId: 'old', functionKey: 'default/f', version: 2, incarnation: 'fi_1', inflight: 0 })).toBe(false);
    expect(d.adopt(n1, { sandboxId: 'other', functionKey: 'default/f', version: 3, incarnation: 'fi_before_delete', inflight: 0 })).toBe(false);
    expect(d.adopt(n1, { sandboxId: 'cur', functionKey: 'default/f', version: 3, incarnation: 'fi_1', inflight: 0 })).toBe(true);
    expect(d.adopt(n1, { sandboxId: 'cur', functionKey: 'default/f', version: 3, incarnation: 'fi_1', inflight: 0 })).toBe(false);
    expect(d.adopt(n1, { sandboxId: 'x', functionKey: 'default/none', version: 1, incarnation: 'fi_1', inflight: 0 })).toBe(false);
    // another worker reporting a sandbox id this one has does not take it over
    const n2 = node('n2', []);
    expect(d.adopt(n2, { sandboxId: 'cur', functionKey: 'default/f', version: 3, incarnation: 'fi_1', inflight: 0 })).toBe(false);
    expect(d.sandboxCount).toBe(1);
    expect(d.sandboxOn(n1, 'cur')?.node).toBe(n1);
    expect(d.sandboxOn(n2, 'cur')).toBeUndefined();
    d.invoke(fn, req, reply);
    expect(frames('create')).toHaveLength(0);
    expect((frames('invoke')[0] as { sandboxId: string }).sandboxId).toBe('cur');
  });

  it('a new version drains old sandboxes and never routes to them', () => {
    const fn = d.upsertFunction(record());
    d.invoke(fn, req, reply);
    const first = (frames('create')[0] as { sandboxId: string }).sandboxId;
    d.sandboxReady(n1, first, 1);
    d.upsertFunction(record({ env: { A: '1' } }, 2));
    // in flight on the old one: it drains, then is deleted
    expect(frames('delete')).toHaveLength(0);
    answer((frames('invoke')[0] as { callId: string }).callId);
    expect(frames('delete')).toHaveLength(1);
    d.invoke(fn, req, reply);
    expect(frames('create')).toHaveLength(2);
  });

  // ---- lifecycle under faults ----

  const sbOf = (i = 0): string => (frames('create')[i] as { sandboxId: string }).sandboxId;
  const callOf = (i: number): string => (frames('invoke')[i] as { callId: string }).callId;

  it('a lost worker leaves no ghost: its sandbox never gets calls again and the function can scale to zero', () => {
    const fn = d.upsertFunction(record({ concurrency: 2 }));
    d.invoke(fn, req, reply);
    d.sandboxReady(n1, sbOf(), 1);
    d.invoke(fn, req, reply); // second slot of the same sandbox
    expect(frames('invoke')).toHaveLength(2);
    d.nodeLost(n1, 'killed');
    expect(results.map((r) => r.status)).toEqual([502, 502]);
    expect(d.sandboxCount).toBe(0);
    expect(fn.freeCount).toBe(0);
    expect(fn.inflight).toBe(0);
    expect(fn.scale).toBe(0);
    expect(n1.inflight).toBe(0);
    // the next call starts a new sandbox instead of waiting on the dead one
    d.invoke(fn, req, reply);
    expect(frames('invoke')).toHaveLength(2);
    expect(frames('create')).toHaveLength(2);
  });

  it('deleting a function with a call in flight deletes its sandbox when the call ends', () => {
    const fn = d.upsertFunction(record());
    d.invoke(fn, req, reply);
    d.sandboxReady(n1, sbOf(), 1);
    d.removeFunction('default/f');
    expect(frames('delete')).toHaveLength(0);
    answer(callOf(0));
    expect(results[0]?.status).toBe(200);
    expect(frames('delete')).toEqual([{ t: 'delete', sandboxId: sbOf() }]);
    expect(d.sandboxCount).toBe(0);
    // one still being created when the function goes is deleted when it reports ready
    const fn2 = d.upsertFunction(record({}, 1));
    d.invoke(fn2, req, reply);
    d.removeFunction('default/f');
    d.sandboxReady(n1, sbOf(1), 1);
    expect(frames('delete').map((f) => (f as { sandboxId: string }).sandboxId)).toEqual([sbOf(), sbOf(1)]);
    expect(d.sandboxCount).toBe(0);
  });

  it('reports each sandbox its worker was asked for once when it goes, whether deleted, failed or lost', () => {
    const fn = d.upsertFunction(record({ scale: { max: 10 } }));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      expect(d.createSandbox(fn)).toBe(true);
      ids.push((frames('create')[i] as { sandboxId: string }).sandboxId);
    }
    const [a, b, c] = ids as [string, string, string];
    d.sandboxReady(n1, a, 1);
    d.deleteSandbox(d.sandboxOn(n1, a) as SandboxState);
    d.sandboxFailed(n1, b, { code: 'sandbox_failed', message: 'no' });
    d.sandboxReady(n1, c, 1);
    d.nodeLost(n1, 'gone');
    d.nodeLost(n1, 'gone again');
    expect(gone).toEqual([a, b, c]);
    // a create frame that could not be sent reached no worker: nothing to report
    n1.send = () => false;
    expect(d.createSandbox(fn)).toBe(false);
    expect(gone).toEqual([a, b, c]);
  });

  it('a sandbox ready that the control plane does not track (created before a reconnect) is deleted', () => {
    d.sandboxReady(n1, 'sb-from-before', 12);
    expect(frames('delete')).toEqual([{ t: 'delete', sandboxId: 'sb-from-before' }]);
  });

  it('takes reports about a sandbox from its own worker only', () => {
    const fn = d.upsertFunction(record());
    expect(d.createSandbox(fn)).toBe(true);
    const id = (frames('create')[0] as { sandboxId: string }).sandboxId;
    const otherSent: ControlFrame[] = [];
    const n2 = node('n2', otherSent);
    d.sandboxReady(n2, id, 1);
    expect(otherSent).toEqual([{ t: 'delete', sandboxId: id }]);
    d.sandboxFailed(n2, id, { code: 'sandbox_failed', message: 'not yours' });
    expect(d.sandboxOn(n1, id)?.status).toBe('creating');
    d.sandboxReady(n1, id, 1);
    expect(d.sandboxOn(n1, id)?.status).toBe('ready');
    expect([...d.allSandboxes()].map((sb) => sb.id)).toEqual([id]);
  });

  it('an adopted sandbox keeps the calls the worker reported running; their slots free when the worker reports them done', () => {
    const fn = d.upsertFunction(record({ concurrency: 1, scale: { max: 1 } }));
    expect(d.adopt(n1, { sandboxId: 'busy', functionKey: 'default/f', version: 1, incarnation: 'fi_1', inflight: 1 })).toBe(true);
    d.invoke(fn, req, reply);
    expect(frames('invoke')).toHaveLength(0); // waits: the only slot is taken
    expect(fn.queued).toBe(1);
    // the worker finishes the call it had before the restart (unknown to us)
    d.result(n1, { t: 'result', callId: 'call-from-before', sandboxId: 'busy', status: 200, headers: {}, body: new Uint8Array(), execMs: 5 });
    expect(frames('invoke')).toHaveLength(1);
    expect((frames('invoke')[0] as { sandboxId: string }).sandboxId).toBe('busy');
    // a stray result for the same sandbox frees nothing more
    d.result(n1, { t: 'result', callId: 'call-from-before', sandboxId: 'busy', status: 200, headers: {}, body: new Uint8Array(), execMs: 5 });
    expect(fn.freeCount).toBe(0);
    expect(fn.holdScaleDownUntil).toBeGreaterThan(now);
  });

  it('losing an adopted sandbox frees the slots of the calls its worker reported, and its cores', () => {
    const fn = d.upsertFunction(record({ concurrency: 3, scale: { max: 1 } }));
    expect(d.adopt(n1, { sandboxId: 'busy', functionKey: 'default/f', version: 1, incarnation: 'fi_1', inflight: 2 })).toBe(true);
    expect(n1.inflight).toBe(2);
    expect(n1.busy).toBe(1);
    d.invoke(fn, req, reply);
    expect(n1.inflight).toBe(3);
    d.nodeLost(n1, 'gone');
    expect(results.map((r) => r.status)).toEqual([502]);
    expect(n1.inflight).toBe(0);
    expect(n1.busy).toBe(0);
    // a late result for a reported call finds nothing to free
    d.result(n1, { t: 'result', callId: 'call-from-before', sandboxId: 'busy', status: 200, headers: {}, body: new Uint8Array(), execMs: 5 });
    expect(n1.inflight).toBe(0);
  });

  it('a cancelled queued call leaves its queue at once and drops its body', () => {
    const fn = d.upsertFunction(record());
    const body = new Uint8Array(1024);
    const call = d.invoke(fn, { ...req, body }, reply);
    expect(fn.queued).toBe(1);
    d.cancel(call);
    expect(fn.queued).toBe(0);
    expect(call.req.body.byteLength).toBe(0);
    d.sandboxReady(n1, sbOf(), 1);
    expect(frames('invoke')).toHaveLength(0);
    expect(results).toHaveLength(0); // a cancelled call is never answered
  });

  it('time spent waiting does not eat into the execution timeout; a live worker is given time, a silent one is not', () => {
    const fn = d.upsertFunction(record({ timeout: '1s' }));
    d.invoke(fn, req, reply);
    now = 900;
    vi.advanceTimersByTime(900);
    d.sandboxReady(n1, sbOf(), 900);
    const inv = frames('invoke')[0] as { timeoutMs: number };
    expect(inv.timeoutMs).toBe(1000);
    // its worker heartbeats: the call may be frozen or held for a core there, so it is not failed
    n1.lastHeartbeat = now;
    vi.advanceTimersByTime(3100);
    expect(results).toHaveLength(0);
    // the worker falls silent: the control plane answers for it at the next deadline
    n1.lastHeartbeat = -1e9;
    vi.advanceTimersByTime(3100);
    expect(results[0]?.status).toBe(504);
    expect(results[0]?.error?.message).toMatch(/did not answer within its timeout of 1000 ms/);
  });

  it('a draining worker gets no new sandboxes; idle ones go now, busy ones after their calls', () => {
    const fn = d.upsertFunction(record({ concurrency: 1 }));
    d.invoke(fn, req, reply);
    d.sandboxReady(n1, sbOf(), 1);
    fn.record.spec.scale.max = 2;
    d.createSandbox(fn);
    d.sandboxReady(n1, sbOf(1), 1);
    n1.status = 'draining';
    d.nodeDraining(n1);
    expect(frames('delete').map((f) => (f as { sandboxId: string }).sandboxId)).toEqual([sbOf(1)]);
    answer(callOf(0));
    expect(frames('delete').map((f) => (f as { sandboxId: string }).sandboxId)).toEqual([sbOf(1), sbOf()]);
    expect(d.sandboxCount).toBe(0);
    expect(d.createSandbox(fn)).toBe(false);
  });

  // ---- price classes across functions ----

  it('a full queue sheds its lowest class for a higher one, and refuses only when nothing lower is queued', () => {
    const fn = d.upsertFunction(record({ scale: { max: 1 } })); // queue bound 3
    d.invoke(fn, { ...req, priceClass: 'batch' }, reply);
    d.invoke(fn, { ...req, priceClass: 'batch' }, reply);
    d.invoke(fn, { ...req, priceClass: 'standard' }, reply);
    expect(results).toHaveLength(0);
    d.invoke(fn, { ...req, priceClass: 'critical' }, reply); // sheds the newest batch call
    expect(results).toHaveLength(1);
    expect(results[0]?.status).toBe(503);
    expect(results[0]?.error?.message).toMatch(/shed .* to make room for a critical call/);
    expect(fn.queued).toBe(3);
    d.invoke(fn, { ...req, priceClass: 'batch' }, reply); // nothing lower than batch: refused
    expect(results[1]?.status).toBe(503);
    expect(results[1]?.error?.message).toMatch(/none of a lower class than batch/);
    d.invoke(fn, { ...req, priceClass: 'critical' }, reply); // sheds the other batch call
    expect(results).toHaveLength(3);
    expect(fn.queued).toBe(3);
  });

  it('tracks which classes run on each node: a sandbox counts at its highest call', () => {
    const fn = d.upsertFunction(record({ concurrency: 2 }));
    d.invoke(fn, { ...req, priceClass: 'batch' }, reply);
    d.sandboxReady(n1, sbOf(), 1);
    expect(n1.busyByRank).toEqual([1, 0, 0, 0]);
    d.invoke(fn, { ...req, priceClass: 'critical' }, reply);
    expect(n1.busyByRank).toEqual([0, 0, 0, 1]);
    expect(n1.busy).toBe(1);
    answer(callOf(1)); // the critical call ends: the sandbox is batch again
    expect(n1.busyByRank).toEqual([1, 0, 0, 0]);
    answer(callOf(0));
    expect(n1.busy).toBe(0);
  });

  it('when no worker can run a class now, the function waits and is placed when capacity frees, best price × wait first', () => {
    let capacity = false;
    const d2 = new Dispatcher({
      clock: { now: () => now, wallNow: () => now },
      classes,
      log: silentLogger(),
      maxQueuePerFunction: 10,
      maxWaitMs: 60_000,
      hooks: { place: () => (capacity ? { node: n1, core: -1 } : 'busy'), awaitingWorkers: () => false },
    });
    const batchFn = d2.upsertFunction({ ...record({ priceClass: 'batch' }), name: 'b' });
    const critFn = d2.upsertFunction({ ...record({ priceClass: 'critical' }), name: 'c' });
    d2.invoke(batchFn, { ...req, priceClass: 'batch' }, reply); // t=0
    now = 10;
    d2.invoke(critFn, { ...req, priceClass: 'critical' }, reply); // t=10
    expect(results).toHaveLength(0); // they wait, they are not refused
    expect(d2.pendingPlacements).toBe(2);
    expect(frames('create')).toHaveLength(0);
    capacity = true;
    now = 30; // critical 2 × 20 = 40 beats batch 0.5 × 30 = 15
    d2.retryWaiting();
    const created = frames('create').map((f) => (f as { spec: { functionKey: string } }).spec.functionKey);
    expect(created[0]).toBe('default/c');
    expect(created).toEqual(['default/c', 'default/b']);
    expect(d2.pendingPlacements).toBe(0);
  });

  // ---- call chains ----

  /** A parent call of `f` running on n1, and function `g` for its children. */
  function runningParent(priceClass = 'critical'): { parent: Call; g: FunctionRuntime } {
    const fn = d.upsertFunction(record());
    const g = d.upsertFunction({ ...record(), name: 'g' });
    d.invoke(fn, { ...req, priceClass }, reply);
    d.sandboxReady(n1, sbOf(), 1);
    const parent = d.runningCallOn(n1, callOf(0));
    if (parent === undefined) throw new Error('parent not running');
    return { parent, g };
  }

  it('finds a running call only on the node it was dispatched to, and only while it runs', () => {
    const { parent } = runningParent();
    expect(d.runningCallOn(n1, parent.id)).toBe(parent);
    expect(d.runningCallOn(node('n2', []), parent.id)).toBeUndefined();
    expect(d.runningCallOn(n1, 'call-unknown')).toBeUndefined();
    answer(parent.id);
    expect(d.runningCallOn(n1, parent.id)).toBeUndefined();
  });

  it('a chain call records its parent and depth, and the invoke frame carries the parent', () => {
    const { parent, g } = runningParent();
    const child = d.invokeChild(parent, g, { ...req, priceClass: 'critical' }, reply);
    expect(child.req.parentId).toBe(parent.id);
    expect(child.req.depth).toBe(1);
    d.sandboxReady(n1, sbOf(1), 1);
    expect(frames('invoke')[1]).toMatchObject({ callId: child.id, parentId: parent.id });
    const grandchild = d.invokeChild(child, g, { ...req, priceClass: 'critical' }, reply);
    expect(grandchild.req.depth).toBe(2);
  });

  it('a parent waiting for its child holds no core in placement\'s view until the child answers', () => {
    const { parent, g } = runningParent();
    expect(n1.busyByRank).toEqual([0, 0, 0, 1]);
    const child = d.invokeChild(parent, g, { ...req, priceClass: 'critical' }, reply);
    // placed while the parent counted as waiting: the child may take the parent's core
    expect(busyAtPlacement).toEqual([0, 0]);
    d.sandboxReady(n1, sbOf(1), 1);
    expect(n1.busyByRank).toEqual([0, 0, 0, 1]); // the child
    answer(child.id);
    expect(results.at(-1)?.status).toBe(200);
    expect(n1.busyByRank).toEqual([0, 0, 0, 1]); // the parent again
    answer(parent.id);
    expect(n1.busy).toBe(0);
  });

  it('when a parent ends, its chain calls still waiting for a sandbox fail with chain_broken; running ones go on', () => {
    const { parent, g } = runningParent();
    const answers: InvocationResult[] = [];
    const queued = d.invokeChild(parent, g, { ...req, priceClass: 'critical' }, (r) => answers.push(r));
    expect(g.queued).toBe(1);
    answer(parent.id);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.error?.code).toBe('chain_broken');
    expect(answers[0]?.error?.message).toContain(parent.id);
    expect(queued.done).toBe(true);
    expect(g.queued).toBe(0);
  });
});
