import { describe, expect, it } from 'vitest';
import type { ControlFrame } from '../protocol/messages.js';
import { LOG_HOLDER_MEMORY_MS, LogCollector } from './log-collector.js';
import type { NodeRegistry, WorkerNode } from './node-registry.js';

interface Sb {
  node: WorkerNode;
}

/** Workers that answer every getLogs at once with one line naming themselves. */
function setup() {
  let now = 0;
  const nodes = new Map<string, WorkerNode>();
  const asked: string[] = [];
  const sandboxes = new Set<Sb>();
  // what the function's owner core answers: the workers running one of its sandboxes
  const running = (key: string): Promise<[string, string][]> => Promise.resolve(key === 'default/f' ? [...sandboxes].map((sb): [string, string] => [sb.node.id, sb.node.name]) : []);
  const c = new LogCollector({ nodes: { get: (id: string) => nodes.get(id) } as unknown as NodeRegistry, running, clock: { now: () => now, wallNow: () => now } });
  const node = (id: string): WorkerNode => {
    const n = {
      id,
      name: `w-${id}`,
      status: 'ready',
      send: (f: ControlFrame) => {
        if (f.t !== 'getLogs') return true;
        asked.push(id);
        queueMicrotask(() => c.answer(n, { t: 'logs', reqId: f.reqId, lines: [{ ts: 1, sandboxId: 's', stream: 'stdout', line: `from ${id}` }] }));
        return true;
      },
    } as unknown as WorkerNode;
    nodes.set(id, n);
    return n;
  };
  const workersAsked = async (): Promise<string[]> => {
    asked.length = 0;
    const r = await c.fetch({ ns: 'default', fn: 'f' });
    expect(r.lines.map((l) => l.line).sort()).toEqual(asked.map((id) => `from ${id}`).sort());
    return asked.sort();
  };
  return { c, node, sandboxes, workersAsked, advance: (ms: number) => (now += ms) };
}

describe('which workers are asked for a function\'s logs', () => {
  it('those running its sandboxes now, however long they have run', async () => {
    const t = setup();
    const a = t.node('a');
    t.node('b');
    t.sandboxes.add({ node: a });
    t.sandboxes.add({ node: a });
    expect(await t.workersAsked()).toEqual(['a']);
    t.advance(LOG_HOLDER_MEMORY_MS * 3);
    expect(await t.workersAsked()).toEqual(['a']);
    t.c.stop();
  });

  it('and those where one went, until the workers have dropped its lines', async () => {
    const t = setup();
    const a = t.node('a');
    const b = t.node('b');
    const sb = { node: b };
    t.sandboxes.add({ node: a });
    t.sandboxes.add(sb);
    t.advance(LOG_HOLDER_MEMORY_MS * 2);
    t.sandboxes.delete(sb);
    t.c.sandboxGone(b.id, b.name, 'default/f');
    expect(await t.workersAsked()).toEqual(['a', 'b']);
    t.advance(LOG_HOLDER_MEMORY_MS);
    expect(await t.workersAsked()).toEqual(['a', 'b']);
    t.advance(1);
    expect(await t.workersAsked()).toEqual(['a']);
    t.c.stop();
  });

  it('no one when no sandbox of it ran anywhere', async () => {
    const t = setup();
    t.node('a');
    const b = t.node('b');
    t.c.sandboxGone(b.id, b.name, 'default/other');
    expect(await t.workersAsked()).toEqual([]);
    t.c.stop();
  });
});
