/**
 * One scheduler core of `baton bench sched`'s cold-invocation measurement: the
 * worker_threads entry behind runColdThreads (cold.ts). It is a compiled
 * script: threads start it from dist/ (Node does not run a TypeScript file
 * given to `new Worker`), so tests that run from the sources need `npm run
 * build` first.
 *
 * The thread wires the real data plane as a scheduler core does
 * (src/scheduler/scheduler-core.ts, constructor): a Dispatcher whose
 * placement and core claims are a CorePlacement on the shared SharedNodes and
 * SharedCorePool, with this thread's shard; a NodeMirror for every worker
 * slot, all ready; and its own functions. A mirror's `send` does no I/O: it
 * records the frame, and the loop answers it at once, as the worker would —
 * create → sandboxReady, invoke → result, delete → nothing — so one cold
 * invocation runs, on this thread, in one synchronous step:
 *
 *   invoke (no sandbox: queued, placed — a core claimed in the pool, memory
 *   taken in SharedNodes — and `create` sent) → sandboxReady (the queued call
 *   is dispatched: busy counts moved, `invoke` sent) → result (the call is
 *   answered, its slot and core released) → deleteSandbox (as scale-to-zero
 *   does: `delete` sent, the sandbox forgotten), so the function's next call
 *   is cold again.
 *
 * Any other frame, or a missing one, or a missing answer, stops the thread
 * with an error that says what the dispatcher did instead.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../../src/common/clock.js';
import { compileFunctionSpec } from '../../src/common/function-spec.js';
import { silentLogger } from '../../src/common/logger.js';
import { Dispatcher } from '../../src/dataplane/dispatcher.js';
import type { FunctionRuntime } from '../../src/dataplane/function-runtime.js';
import type { InvocationResult } from '../../src/dataplane/types.js';
import { PriceClassSet } from '../../src/policies/price-classes.js';
import { createRng } from '../../src/policies/rng.js';
import type { ControlFrame } from '../../src/protocol/messages.js';
import { CorePlacement } from '../../src/scheduler/core-placement.js';
import { NodeMirror } from '../../src/scheduler/node-mirror.js';
import { SharedCorePool } from '../../src/scheduler/shared-core-pool.js';
import { SharedNodes } from '../../src/scheduler/shared-nodes.js';
import type { FunctionRecord } from '../../src/storage/store.js';
import { COLD_CONTROL, type ColdTask, type ColdThreadResult } from './cold.js';

/** Cold invocations between two looks at the clock or the stop flag. */
const BATCH = 64;
const EMPTY = new Uint8Array(0);
const RESULT_BODY = new Uint8Array([0x6f, 0x6b]);

function record(shard: number, i: number): FunctionRecord {
  return {
    namespace: 'bench',
    name: `c${shard}-f${i}`,
    version: 1,
    incarnation: `fi_${shard}_${i}`,
    spec: compileFunctionSpec({ runtime: 'http', command: ['x'], timeout: '30s', concurrency: 1, scale: { max: 1 } }),
    source: {},
    bundleHash: '',
    bundleBytes: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}

function run(t: ColdTask): ColdThreadResult {
  const control = new Int32Array(t.control);
  const nodes = SharedNodes.attach(t.nodes);
  const pool = SharedCorePool.attach(t.pool);
  const classes = new PriceClassSet();

  // what the mirrors' sends recorded since the loop last looked
  const sent: ControlFrame[] = [];
  const sentTo: NodeMirror[] = [];
  const mirrors: NodeMirror[] = [];
  const ready: NodeMirror[] = [];
  for (let slot = 0; slot < nodes.slots; slot++) {
    const m = new NodeMirror(nodes, slot, nodes.generation(slot), `node-${slot}`, `node-${slot}`, t.memoryMb, `ses-${slot}`);
    m.send = (f) => {
      sent.push(f);
      sentTo.push(m);
      return true;
    };
    m.linked = true;
    m.status = 'ready';
    mirrors.push(m);
    ready.push(m);
  }

  const counts = { created: 0, ready: 0, gone: 0, done: 0 };
  const placement = new CorePlacement(nodes, pool, t.shard, (slot) => mirrors[slot], () => ready, createRng(t.seed + t.shard));
  const dispatcher = new Dispatcher({
    clock: systemClock,
    classes,
    log: silentLogger(),
    maxQueuePerFunction: 100,
    claims: placement,
    hooks: {
      place: (fn, rank, forCall) => placement.place(fn, rank, forCall),
      // every worker is ready from the start: a call that finds no capacity must not wait for one to join
      awaitingWorkers: () => false,
      onSandboxCreated: () => void counts.created++,
      onSandboxReady: () => void counts.ready++,
      onSandboxGone: () => void counts.gone++,
      onCallDone: () => void counts.done++,
    },
  });
  const fns: FunctionRuntime[] = [];
  for (let i = 0; i < t.functions; i++) fns.push(dispatcher.upsertFunction(record(t.shard, i)));

  let answered = 0;
  let last: InvocationResult | undefined;
  const reply = (r: InvocationResult): void => {
    answered++;
    last = r;
  };
  // slots this thread placed a sandbox on (its cores come from its shard's list, or a stolen one)
  const usedSlot = new Uint8Array(nodes.slots);

  const describe = (): string => (sent.length === 0 ? 'nothing' : sent.map((f, i) => `${f.t} to ${sentTo[i]?.name ?? '?'}`).join(', '));
  const expectOne = <K extends ControlFrame['t']>(kind: K, after: string, fn: FunctionRuntime): { frame: Extract<ControlFrame, { t: K }>; node: NodeMirror } => {
    const frame = sent[0];
    const node = sentTo[0];
    if (sent.length !== 1 || frame === undefined || node === undefined || frame.t !== kind) {
      const why = kind === 'create' && sent.length === 0 ? ` (no room found: ${dispatcher.pendingPlacements} function(s) wait for capacity; ${pool.idleOn(t.shard)} idle cores in this thread's shard, ${pool.idleTotal()} in all)` : '';
      throw new Error(`scheduler thread ${t.shard}: after ${after} of ${fn.key}, expected one ${kind} frame; the dispatcher sent ${describe()}${why}`);
    }
    sent.length = 0;
    sentTo.length = 0;
    return { frame: frame as Extract<ControlFrame, { t: K }>, node };
  };

  let next = 0;
  /** One cold invocation, start to end. */
  const coldOne = (): void => {
    const fn = fns[next] as FunctionRuntime;
    if (++next === fns.length) next = 0;
    if (fn.scale !== 0 || fn.sandboxes.size !== 0) throw new Error(`${fn.key} still has ${fn.sandboxes.size} sandbox(es) before its call: the next call would not be cold`);
    const want = answered + 1;
    dispatcher.invoke(fn, { method: 'POST', path: '/', headers: {}, body: EMPTY, priceClass: fn.record.spec.priceClass }, reply);
    const { frame: create, node } = expectOne('create', 'invoke', fn);
    usedSlot[node.slot] = 1;
    dispatcher.sandboxReady(node, create.sandboxId, 1);
    const { frame: inv } = expectOne('invoke', 'sandboxReady', fn);
    if (inv.sandboxId !== create.sandboxId) throw new Error(`${fn.key}: the call went to sandbox ${inv.sandboxId}, not to ${create.sandboxId} made for it`);
    dispatcher.result(node, { t: 'result', callId: inv.callId, sandboxId: inv.sandboxId, status: 200, headers: {}, body: RESULT_BODY, execMs: 1, cpuMs: 1, mbMs: 64 });
    if (answered !== want || last?.status !== 200) throw new Error(`${fn.key}: after the result, ${answered - want + 1} answer(s), status ${String(last?.status)}${last?.error === undefined ? '' : ` (${last.error.message})`}`);
    if (sent.length !== 0) throw new Error(`${fn.key}: the result made the dispatcher send ${describe()}`);
    const sb = dispatcher.sandboxOn(node, create.sandboxId);
    if (sb === undefined || sb.status !== 'ready' || sb.inflight !== 0 || sb.core !== -1) throw new Error(`${fn.key}: after its call, sandbox ${create.sandboxId} is ${sb === undefined ? 'gone' : `${sb.status}, ${sb.inflight} call(s) in flight, core ${sb.core}`}; expected ready and idle, holding no core`);
    dispatcher.deleteSandbox(sb);
    expectOne('delete', 'deleteSandbox', fn);
  };
  const loop = (until: () => boolean): number => {
    let n = 0;
    do {
      for (let k = 0; k < BATCH; k++) coldOne();
      n += BATCH;
    } while (!until());
    return n;
  };

  Atomics.add(control, COLD_CONTROL.ready, 1);
  parentPort?.postMessage({ ready: true });
  Atomics.wait(control, COLD_CONTROL.go, 0);
  const warmEnd = performance.now() + t.warmupMs;
  const warmupCold = t.warmupMs > 0 ? loop(() => performance.now() >= warmEnd) : 0;
  const steals0 = pool.steals(t.shard);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const cold = loop(() => Atomics.load(control, COLD_CONTROL.stop) !== 0);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const steals = pool.steals(t.shard) - steals0;

  // what this thread's data plane still holds: nothing, if every sandbox went and every call was answered
  const problems: string[] = [];
  const total = warmupCold + cold;
  if (dispatcher.sandboxCount !== 0) problems.push(`${dispatcher.sandboxCount} sandbox(es) left`);
  if (dispatcher.pendingPlacements !== 0) problems.push(`${dispatcher.pendingPlacements} function(s) still wait for capacity`);
  let queued = 0;
  let inflight = 0;
  for (const fn of fns) {
    queued += fn.queued;
    inflight += fn.inflight;
    if (fn.scale !== 0 || fn.sandboxes.size !== 0) problems.push(`${fn.key}: scale ${fn.scale}, ${fn.sandboxes.size} sandbox(es)`);
  }
  if (queued + inflight !== 0) problems.push(`${queued} call(s) queued, ${inflight} in flight`);
  for (const m of mirrors) {
    if (m.sandboxes.size !== 0 || m.inflight !== 0 || m.busy !== 0) problems.push(`${m.name}: ${m.sandboxes.size} sandbox(es), ${m.inflight} call(s) in flight, ${m.busy} busy`);
  }
  if (answered !== total || counts.done !== total) problems.push(`${answered} answer(s) and ${counts.done} calls done for ${total} invocations`);
  if (counts.created !== total || counts.ready !== total || counts.gone !== total) problems.push(`${counts.created} sandbox(es) created, ${counts.ready} ready, ${counts.gone} gone for ${total} invocations`);
  let slotsUsed = 0;
  for (const u of usedSlot) slotsUsed += u;
  return { cold, warmupCold, seconds, steals, processCpuSeconds: (cpu.user + cpu.system) / 1e6, created: counts.created, gone: counts.gone, answered, sandboxesLeft: dispatcher.sandboxCount, slotsUsed, problems: problems.slice(0, 20) };
}

const task = (workerData as { batonColdSched?: ColdTask } | undefined)?.batonColdSched;
if (parentPort !== null && task !== undefined) parentPort.postMessage({ result: run(task) });
