import { BatonError } from '../common/errors.js';
import type { Clock } from '../common/clock.js';
import type { FunctionStatus, SandboxRow } from '../scheduler/core-messages.js';
import type { Store } from '../storage/store.js';
import { requireAdmin, requireNamespace, type Authenticator } from './auth.js';
import { checkName, type FunctionService } from './function-service.js';
import { parseJson } from './http-kit.js';
import type { NodeRegistry, WorkerNode } from './node-registry.js';
import type { RouteTable } from './routes.js';

/** What the scheduler cores hold, asked of them (each core answers for the functions it owns). */
export interface ClusterView {
  functionStatus(keys: string[]): Promise<Record<string, FunctionStatus>>;
  sandboxes(namespace?: string): Promise<SandboxRow[]>;
  /** Per worker id: [sandboxes, calls in flight], every core's together. */
  nodeStats(): Promise<Map<string, [number, number]>>;
  status(namespace?: string): Promise<{ sandboxes: number; inflight: number; queued: number }>;
  /** Cores of the worker running calls now (shared capacity). */
  busyCores(node: WorkerNode): number;
}

export interface ManagementDeps {
  routes: RouteTable;
  store: Store;
  auth: Authenticator;
  functions: FunctionService;
  cluster: ClusterView;
  nodes: NodeRegistry;
  clock: Clock;
  maxManagementBodyBytes: number;
  version: string;
  /** Scheduler cores running the data plane. */
  schedulerThreads: number;
  startedAt: number;
}

/**
 * The largest function spec (the manifest without its bundle) accepted, as
 * JSON. A real one is a few hundred bytes; validating a huge one costs time
 * and memory in proportion (every bad array element is its own issue), so the
 * size is checked before the spec is looked at.
 */
const MAX_SPEC_BYTES = 32 * 1024;

function checkSpecSize(body: unknown): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  const spec = (body as { spec?: unknown }).spec;
  if (spec === undefined) return;
  const bytes = Buffer.byteLength(JSON.stringify(spec) ?? '');
  if (bytes > MAX_SPEC_BYTES) throw new BatonError('payload_too_large', `spec: ${bytes} bytes of JSON exceeds the limit of ${MAX_SPEC_BYTES} bytes`);
}

/** Management REST API: namespaces, functions, cluster view. */
export function mountManagementApi(d: ManagementDeps): void {
  const { routes, functions } = d;

  routes.add('get', '/v1/whoami', (ex, _req, who) => ex.json(200, { namespace: who.namespace, admin: who.admin }));

  routes.add('get', '/v1/namespaces', (ex, _req, who) => {
    requireAdmin(who);
    const counts = functions.counts();
    const namespaces = d.store.listNamespaces().map((n) => ({ name: n.name, createdAt: new Date(n.createdAt).toISOString(), functions: counts.get(n.name) ?? 0 }));
    ex.json(200, { namespaces });
  });

  routes.add('post', '/v1/namespaces', async (ex, req, who) => {
    requireAdmin(who);
    const body = parseJson(await ex.readBody(req, 64 * 1024));
    const name = (body as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') throw new BatonError('bad_request', 'name: expected a string');
    checkName(name, 'namespace');
    if (d.store.getNamespace(name) !== undefined) throw new BatonError('conflict', `namespace "${name}" already exists`);
    d.store.ensureNamespace(name, d.clock.wallNow());
    const apiKey = d.auth.issue(name, `namespace ${name}`, d.clock.wallNow());
    ex.json(201, { namespace: name, apiKey });
  });

  routes.add('get', '/v1/namespaces/:ns/functions', async (ex, req, who) => {
    const ns = req.params[0] ?? '';
    requireNamespace(who, ns);
    if (d.store.getNamespace(ns) === undefined) throw new BatonError('not_found', `namespace "${ns}" not found`);
    const list = functions.list(ns);
    const status = await d.cluster.functionStatus(list.map((r) => `${r.namespace}/${r.name}`));
    ex.json(200, { functions: list.map((r) => functions.view(r, status[`${r.namespace}/${r.name}`])) });
  });

  routes.add('get', '/v1/namespaces/:ns/functions/:fn', async (ex, req, who) => {
    const [ns = '', name = ''] = req.params;
    requireNamespace(who, ns);
    const rec = functions.get(ns, name);
    const status = await d.cluster.functionStatus([`${ns}/${name}`]);
    ex.json(200, { function: functions.view(rec, status[`${ns}/${name}`]) });
  });

  routes.add('put', '/v1/namespaces/:ns/functions/:fn', async (ex, req, who) => {
    const [ns = '', name = ''] = req.params;
    requireNamespace(who, ns);
    const body = parseJson(await ex.readBody(req, d.maxManagementBodyBytes));
    checkSpecSize(body);
    const { record, outcome } = await functions.apply(ns, name, body);
    ex.json(outcome === 'unchanged' ? 200 : 201, { function: functions.view(record), changed: outcome !== 'unchanged', outcome });
  });

  routes.add('del', '/v1/namespaces/:ns/functions/:fn', async (ex, req, who) => {
    const [ns = '', name = ''] = req.params;
    requireNamespace(who, ns);
    await functions.delete(ns, name);
    ex.json(200, { deleted: true });
  });

  routes.add('get', '/v1/nodes', async (ex, _req, who) => {
    requireAdmin(who);
    const stats = await d.cluster.nodeStats();
    const now = d.clock.now();
    const nodes = [...d.nodes.all()].map((n) => ({
      id: n.id,
      name: n.name,
      state: n.status,
      runtime: n.runtime,
      cores: n.cores,
      memoryMb: n.memoryMb,
      freeMemoryMb: Math.round(n.freeMemoryMb),
      sandboxes: stats.get(n.id)?.[0] ?? 0,
      inflight: stats.get(n.id)?.[1] ?? 0,
      busyCores: Math.min(n.cores, d.cluster.busyCores(n)),
      waiting: n.waiting,
      preemptions: n.preemptions,
      lastHeartbeatMsAgo: Math.round(now - n.lastHeartbeat),
    }));
    ex.json(200, { nodes });
  });

  routes.add('get', '/v1/sandboxes', async (ex, _req, who) => {
    // oldest first (the cores keep them worker by worker)
    const all = (await d.cluster.sandboxes(who.admin ? undefined : who.namespace)).sort((x, y) => x.createdAt - y.createdAt);
    const sandboxes = all.map((sb) => {
      const { pid, createdAt, ...rest } = sb;
      return { ...rest, ...(who.admin && pid !== undefined ? { pid } : {}), createdAt: new Date(createdAt).toISOString() };
    });
    ex.json(200, { sandboxes });
  });

  routes.add('get', '/v1/status', async (ex, _req, who) => {
    let ready = 0;
    let total = 0;
    for (const n of d.nodes.all()) {
      total++;
      if (n.status === 'ready') ready++;
    }
    let fns = 0;
    for (const [ns, n] of functions.counts()) if (who.admin || ns === who.namespace) fns += n;
    const { sandboxes, inflight, queued } = await d.cluster.status(who.admin ? undefined : who.namespace);
    ex.json(200, { version: d.version, uptimeS: Math.round((d.clock.now() - d.startedAt) / 1000), schedulerThreads: d.schedulerThreads, nodes: { ready, total }, functions: fns, sandboxes, inflight, queued });
  });
}
