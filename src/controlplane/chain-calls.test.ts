import { beforeEach, describe, expect, it } from 'vitest';
import { BatonError } from '../common/errors.js';
import { compileFunctionSpec } from '../common/function-spec.js';
import { silentLogger } from '../common/logger.js';
import { Dispatcher } from '../dataplane/dispatcher.js';
import type { Call, NodeState } from '../dataplane/types.js';
import { PriceClassSet } from '../policies/price-classes.js';
import type { CallResultFrame, ChainCallFrame, ControlFrame, InvokeFrame } from '../protocol/messages.js';
import { CoreCalls } from '../scheduler/core-calls.js';
import { PortOutbox } from '../scheduler/port-outbox.js';
import type { FunctionRecord } from '../storage/store.js';
import { ChainCalls } from './chain-calls.js';

const classes = new PriceClassSet();

function record(name: string, priceClass: string, namespace = 'team'): FunctionRecord {
  return {
    namespace,
    name,
    version: 1,
    incarnation: `fi_${name}`,
    spec: compileFunctionSpec({ runtime: 'http', command: ['x'], priceClass, concurrency: 8 }),
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

describe('ChainCalls', () => {
  let sent: ControlFrame[];
  let n1: NodeState;
  let d: Dispatcher;
  let chains: ChainCalls;
  let reqId = 0;
  /** Classes below this rank are over budget. */
  let throttledBelow = 0;

  beforeEach(() => {
    sent = [];
    n1 = node('n1', sent);
    d = new Dispatcher({ clock: { now: () => 0, wallNow: () => 0 }, classes, log: silentLogger(), maxQueuePerFunction: 10, hooks: { place: () => ({ node: n1, core: -1 }), awaitingWorkers: () => true } });
    throttledBelow = 0;
    const budgets = {
      admit: (ns: string, cls: string): void => {
        if (classes.get(cls).rank < throttledBelow) throw new BatonError('budget_exceeded', `namespace "${ns}": ${cls} calls are throttled`, { retryAfter: 30 });
      },
    };
    // a single core owns every function: the chain call is settled and admitted where a client's is
    const calls = new CoreCalls(0, 1, d, [undefined], new PortOutbox({ postMessage: () => undefined }), () => 0, { classes, admit: budgets.admit });
    chains = new ChainCalls({
      runningCallOn: (node, id) => d.runningCallOn(node, id),
      invokeChild: (parent, key, req, reply) => calls.child(parent, key, req, reply),
      classes,
      log: silentLogger(),
      maxInvokeBodyBytes: 100,
      maxDepth: 2,
    });
    d.upsertFunction(record('parent', 'critical'));
    d.upsertFunction(record('cheap', 'batch'));
    d.upsertFunction(record('other', 'batch', 'elsewhere'));
  });

  const invokes = (): InvokeFrame[] => sent.filter((f): f is InvokeFrame => f.t === 'invoke');
  const answers = (): CallResultFrame[] => sent.filter((f): f is CallResultFrame => f.t === 'callResult');

  /** Start a call of `name` from a client (or, with `parent`, from that call) and have it run on n1. */
  function running(name: string, priceClass: string, parent?: Call): Call {
    const fn = d.functions.get(`team/${name}`);
    if (fn === undefined) throw new Error(name);
    const r = { method: 'POST', path: '/', headers: {}, body: new Uint8Array(), priceClass };
    const call = parent === undefined ? d.invoke(fn, r, () => undefined) : d.invokeChild(parent, fn, r, () => undefined);
    const create = sent.filter((f) => f.t === 'create').at(-1) as { sandboxId: string } | undefined;
    if (call.sandbox === undefined && create !== undefined) d.sandboxReady(n1, create.sandboxId, 1);
    return call;
  }

  function chain(parent: Call, over: Partial<ChainCallFrame> = {}, from = n1): CallResultFrame | InvokeFrame | undefined {
    const before = sent.length;
    chains.handle(from, { t: 'call', reqId: ++reqId, parentCallId: parent.id, function: 'cheap', method: 'POST', path: '/', headers: {}, body: new Uint8Array(), ...over });
    // a sandbox the chain call asked for starts at once
    for (const f of sent.slice(before)) if (f.t === 'create') d.sandboxReady(n1, f.sandboxId, 1);
    return sent.slice(before).find((f): f is CallResultFrame | InvokeFrame => f.t === 'callResult' || f.t === 'invoke');
  }

  const childOf = (parent: Call): Call | undefined => [...(parent.children ?? [])].find((c): c is Call => !('abandon' in c));

  it('runs the callee at the higher of its caller\'s class and the one asked for (its own class when none is)', () => {
    const parent = running('parent', 'critical');
    chain(parent);
    expect(childOf(parent)?.req).toMatchObject({ priceClass: 'critical', parentId: parent.id, depth: 1 });
    const low = running('cheap', 'batch');
    chain(low, { priceClass: 'interactive' });
    expect(childOf(low)?.req.priceClass).toBe('interactive');
    const low2 = running('cheap', 'batch');
    chain(low2, { headers: { 'x-price-class': 'standard' } });
    expect(childOf(low2)?.req.priceClass).toBe('standard');
    expect(childOf(low2)?.req.headers['x-price-class']).toBeUndefined();
    const low3 = running('cheap', 'batch');
    chain(low3);
    expect(childOf(low3)?.req.priceClass).toBe('batch');
  });

  it('refuses what a chain may not do, each with its own code and a message that says why', () => {
    const parent = running('parent', 'critical');
    const refused = (over: Partial<ChainCallFrame>): { status: number; code: string | undefined; message: string } => {
      const a = chain(parent, over) as CallResultFrame;
      expect(a.t).toBe('callResult');
      return { status: a.status, code: a.error?.code, message: a.error?.message ?? '' };
    };
    expect(refused({ function: 'other.elsewhere' })).toMatchObject({ status: 403, code: 'forbidden', message: expect.stringContaining('"elsewhere"') as string });
    expect(refused({ function: 'other' })).toMatchObject({ status: 404, code: 'not_found', message: expect.stringContaining('namespace "team"') as string });
    expect(refused({ priceClass: 'gold' })).toMatchObject({ status: 400, code: 'bad_request', message: expect.stringContaining('"gold"') as string });
    expect(refused({ body: new Uint8Array(101) })).toMatchObject({ status: 413, code: 'payload_too_large' });
    expect(refused({ method: 'CONNECT' })).toMatchObject({ status: 400, code: 'bad_request' });
    expect(refused({ headers: { 'bad name': 'x' } })).toMatchObject({ status: 400, code: 'bad_request' });
    expect(refused({ parentCallId: 'call-nope' })).toMatchObject({ status: 502, code: 'chain_broken' });
    // another worker cannot speak for this worker's call
    const n2sent: ControlFrame[] = [];
    chains.handle(node('n2', n2sent), { t: 'call', reqId: 99, parentCallId: parent.id, function: 'cheap', method: 'POST', path: '/', headers: {}, body: new Uint8Array() });
    expect(n2sent).toMatchObject([{ t: 'callResult', reqId: 99, status: 502, error: { code: 'chain_broken' } }]);
    expect(parent.children?.size ?? 0).toBe(0);
  });

  it('admits chain calls against the namespace budget at the class they run at', () => {
    throttledBelow = classes.get('critical').rank;
    const low = running('cheap', 'batch');
    const a = chain(low) as CallResultFrame;
    expect(a).toMatchObject({ t: 'callResult', status: 429, headers: { 'retry-after': '30' }, error: { code: 'budget_exceeded' } });
    // a critical caller's chain calls run at critical, which is still served
    throttledBelow = 0;
    const parent = running('parent', 'critical');
    throttledBelow = classes.get('critical').rank;
    chain(parent);
    expect(childOf(parent)?.req.priceClass).toBe('critical');
  });

  it('refuses a call past the depth limit with chain_too_deep (400)', () => {
    const root = running('parent', 'critical');
    const one = running('cheap', 'critical', root);
    const two = running('cheap', 'critical', one);
    expect(two.req.depth).toBe(2);
    const a = chain(two) as CallResultFrame;
    expect(a).toMatchObject({ t: 'callResult', status: 400, error: { code: 'chain_too_deep' } });
    expect(a.error?.message).toContain('limit of 2');
  });

  it('answers with the callee\'s response, without the caller\'s credentials on the way in', () => {
    const parent = running('parent', 'critical');
    chain(parent, { headers: { Authorization: 'Bearer secret', 'X-Trace': 't' }, body: new Uint8Array([1, 2]) });
    const inv = invokes().at(-1) as InvokeFrame;
    expect(inv.parentId).toBe(parent.id);
    expect(inv.headers).toEqual({ 'x-trace': 't' });
    d.result(n1, { t: 'result', callId: inv.callId, sandboxId: inv.sandboxId, status: 201, headers: { 'x-out': 'o' }, body: new Uint8Array([9]), execMs: 1 });
    expect(answers().at(-1)).toMatchObject({ t: 'callResult', reqId, callId: inv.callId, status: 201, headers: { 'x-out': 'o' }, body: new Uint8Array([9]) });
    // a status that is not final becomes a 502, as at the gateway
    chain(parent);
    const inv2 = invokes().at(-1) as InvokeFrame;
    d.result(n1, { t: 'result', callId: inv2.callId, sandboxId: inv2.sandboxId, status: 103, headers: {}, body: new Uint8Array(), execMs: 1 });
    expect(answers().at(-1)).toMatchObject({ status: 502, error: { code: 'function_error' } });
  });
});
