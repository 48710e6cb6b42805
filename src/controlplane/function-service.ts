import type { Clock } from '../common/clock.js';
import { bundleLimits, type BundleLimits, type BundleSummary } from '../common/bundle.js';
import { BatonError } from '../common/errors.js';
import { FUNCTION_NAME, NAMESPACE_NAME, compileFunctionSpec } from '../common/function-spec.js';
import type { FunctionStatus } from '../scheduler/core-messages.js';
import type { FunctionRecord, PutFunctionResult, Store, StoredBundle } from '../storage/store.js';
import { Interner } from '../common/interner.js';
import { internRecord } from '../storage/intern-record.js';
import { BundlePool } from './bundle-pool.js';

export interface FunctionView {
  namespace: string;
  name: string;
  version: number;
  runtime: string;
  priceClass: string;
  concurrency: number;
  timeoutMs: number;
  scale: { min: number; max: number; targetConcurrency: number; keepAliveMs: number };
  bundleHash: string;
  bundleBytes: number;
  createdAt: string;
  updatedAt: string;
  status: { sandboxes: number; ready: number; inflight: number; queued: number };
}

/** Where function definitions go live: the scheduler cores (each keeps the ones it owns). */
export interface FunctionSink {
  upsert(records: FunctionRecord[]): void;
  remove(key: string): void;
  /** Resolves once every change sent so far is live on every core. */
  settled(): Promise<void>;
}

/**
 * Function definitions: validated, persisted, then made live in the data plane.
 * The main thread keeps every definition (for the management API); the
 * scheduler cores get each change (FunctionSink).
 * Whatever a deploy gets wrong is refused here, before anything is stored; the
 * bundle is checked on a worker thread (BundlePool) so a large or hostile
 * upload never stalls the event loop.
 */
export class FunctionService {
  private readonly limits: BundleLimits;
  private readonly pool = new BundlePool();
  private readonly records = new Map<string, FunctionRecord>();
  private readonly strings = new Interner();

  constructor(
    private readonly store: Store,
    private readonly sink: FunctionSink,
    private readonly clock: Clock,
    private readonly priceClasses: readonly string[],
    maxBundleBytes: number,
  ) {
    this.limits = bundleLimits(maxBundleBytes);
  }

  /** Load every stored definition into the data plane (at start). */
  loadAll(): number {
    const all = this.store.listFunctions();
    const kept = all.map((r) => live(r, this.strings));
    for (const rec of kept) this.records.set(`${rec.namespace}/${rec.name}`, rec);
    this.sink.upsert(kept);
    return all.length;
  }

  async apply(ns: string, name: string, body: unknown): Promise<PutFunctionResult> {
    checkName(ns, 'namespace');
    checkName(name, 'function');
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BatonError('bad_request', 'expected a JSON object { "spec": {...}, "bundle": "<base64>" }');
    }
    const { spec: rawSpec, bundle: rawBundle, ...rest } = body as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) throw new BatonError('bad_request', `unknown field(s) in the request body: ${extra.join(', ')} (expected spec, bundle)`);
    if (rawSpec === undefined) throw new BatonError('invalid_manifest', 'spec: required');
    const spec = compileFunctionSpec(rawSpec, 'spec');
    if (!this.priceClasses.includes(spec.priceClass)) {
      throw new BatonError('invalid_manifest', `spec.priceClass: unknown price class "${spec.priceClass}"; configured classes: ${this.priceClasses.join(', ')}`);
    }
    const hasBundle = rawBundle !== undefined && rawBundle !== null;
    if (hasBundle && typeof rawBundle !== 'string') throw new BatonError('bad_request', 'bundle: expected a base64 string');
    if (spec.runtime === 'node' && !hasBundle) {
      throw new BatonError('invalid_manifest', 'bundle: a node function needs its code; deploy it with `baton deploy`, which uploads the directory');
    }
    let bundle: StoredBundle | undefined;
    if (typeof rawBundle === 'string') {
      const handler = spec.runtime === 'node' ? spec.handler : undefined;
      const { data, summary } = await this.pool.check(rawBundle, this.limits, handler);
      if (handler !== undefined && !summary.hasHandler) throw missingHandler(handler, summary);
      bundle = { data, hash: summary.hash };
    }
    this.store.ensureNamespace(ns, this.clock.wallNow());
    const result = this.store.putFunction(ns, name, spec, rawSpec, bundle, this.clock.wallNow());
    if (result.outcome !== 'unchanged') {
      const rec = live(result.record, this.strings);
      this.records.set(`${ns}/${name}`, rec);
      this.sink.upsert([rec]);
      // answered once every core has it: a call right after the deploy finds it whichever core takes it
      await this.sink.settled();
    }
    return result;
  }

  /** Stop the bundle-checking threads (control-plane stop). */
  close(): Promise<void> {
    return this.pool.close();
  }

  get(ns: string, name: string): FunctionRecord {
    const rec = this.records.get(`${ns}/${name}`);
    if (rec === undefined) throw new BatonError('not_found', `function "${name}" not found in namespace "${ns}"`);
    return rec;
  }

  list(ns: string): FunctionRecord[] {
    const out: FunctionRecord[] = [];
    for (const rec of this.records.values()) if (rec.namespace === ns) out.push(rec);
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async delete(ns: string, name: string): Promise<void> {
    if (!this.store.deleteFunction(ns, name)) throw new BatonError('not_found', `function "${name}" not found in namespace "${ns}"`);
    this.records.delete(`${ns}/${name}`);
    this.sink.remove(`${ns}/${name}`);
    await this.sink.settled();
  }

  /** A definition, if the function exists (any namespace). */
  find(key: string): FunctionRecord | undefined {
    return this.records.get(key);
  }

  /** Functions per namespace. */
  counts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.records.values()) out.set(r.namespace, (out.get(r.namespace) ?? 0) + 1);
    return out;
  }

  /** `status`: what its owner core reports (see ClusterView.functionStatus). */
  view(rec: FunctionRecord, status?: FunctionStatus): FunctionView {
    const s = rec.spec;
    return {
      namespace: rec.namespace,
      name: rec.name,
      version: rec.version,
      runtime: s.runtime,
      priceClass: s.priceClass,
      concurrency: s.concurrency,
      timeoutMs: s.timeoutMs,
      scale: { min: s.scale.min, max: s.scale.max, targetConcurrency: s.scale.targetConcurrency, keepAliveMs: s.scale.keepAliveMs },
      bundleHash: rec.bundleHash,
      bundleBytes: rec.bundleBytes,
      createdAt: new Date(rec.createdAt).toISOString(),
      updatedAt: new Date(rec.updatedAt).toISOString(),
      status: status ?? { sandboxes: 0, ready: 0, inflight: 0, queued: 0 },
    };
  }
}

/**
 * A definition as it is kept in memory, here and on the scheduler cores: all
 * but the source as the user wrote it, which only SQLite keeps (nothing
 * reads it back from memory; it cost a few hundred bytes per function).
 */
function live(r: FunctionRecord, strings: Interner): FunctionRecord {
  return internRecord({ ...r, source: null }, strings);
}


function missingHandler(handler: string, b: BundleSummary): BatonError {
  const files = `${b.fileCount} file${b.fileCount === 1 ? '' : 's'}`;
  let found: string;
  if (b.moduleCount === 0) found = 'it has no .js, .mjs or .cjs file';
  else {
    const more = b.moduleCount > b.modules.length ? ` and ${b.moduleCount - b.modules.length} more` : '';
    found = `its JS modules: ${b.modules.join(', ')}${more}`;
  }
  return new BatonError('invalid_manifest', `spec.handler: "${handler}" is not in the bundle (sha256 ${b.hash.slice(0, 12)}…, ${files}); ${found}`, {
    details: { handler, bundleHash: b.hash, modules: b.modules },
  });
}

export function checkName(name: string, what: 'namespace' | 'function'): void {
  const re = what === 'namespace' ? NAMESPACE_NAME : FUNCTION_NAME;
  if (!re.test(name)) {
    throw new BatonError('bad_request', `invalid ${what} name "${name}": use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit`);
  }
}
