import Database from 'better-sqlite3';
import { randomSecret } from '../common/ids.js';
import type { FunctionSpec } from '../common/function-spec.js';
import type { ApiKeyRecord, FunctionRecord, NamespaceRecord, PutFunctionResult, Store, StoredBundle } from './store.js';

const SCHEMA_VERSION = 3;

const MIGRATION_1 = `
CREATE TABLE namespaces (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE api_keys (
  key_hash TEXT PRIMARY KEY,
  namespace TEXT REFERENCES namespaces(name) ON DELETE CASCADE,
  label TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE bundles (hash TEXT PRIMARY KEY, data BLOB NOT NULL, size INTEGER NOT NULL);
CREATE TABLE functions (
  namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  spec TEXT NOT NULL,
  source TEXT NOT NULL,
  bundle_hash TEXT NOT NULL,
  bundle_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** Incarnation ids: a function deleted and created again is a different function. */
const MIGRATION_2 = `ALTER TABLE functions ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';`;

/**
 * User data besides definitions: accepted async calls (until they end),
 * activation records of async calls with their results (for a retention
 * period), usage by minute, and monthly budgets.
 */
const MIGRATION_3 = `
CREATE TABLE async_calls (
  id TEXT PRIMARY KEY,
  namespace TEXT NOT NULL,
  function TEXT NOT NULL,
  price_class TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  callback_url TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  accepted_at INTEGER NOT NULL
);
CREATE TABLE activations (
  id TEXT PRIMARY KEY,
  namespace TEXT NOT NULL,
  function TEXT NOT NULL,
  record TEXT NOT NULL,
  status TEXT NOT NULL,
  start INTEGER NOT NULL,
  result_status INTEGER,
  result_headers TEXT,
  result_body BLOB,
  expires_at INTEGER NOT NULL
);
CREATE INDEX activations_by_ns ON activations (namespace, start);
CREATE INDEX activations_expiry ON activations (expires_at);
CREATE TABLE usage (
  bucket INTEGER NOT NULL,
  namespace TEXT NOT NULL,
  function TEXT NOT NULL,
  price_class TEXT NOT NULL,
  invocations INTEGER NOT NULL,
  cpu_ms REAL NOT NULL,
  mb_ms REAL NOT NULL,
  cost REAL NOT NULL,
  PRIMARY KEY (namespace, bucket, function, price_class)
);
CREATE TABLE budgets (namespace TEXT PRIMARY KEY, monthly REAL NOT NULL, updated_at INTEGER NOT NULL);
`;

interface FunctionRow {
  namespace: string;
  name: string;
  version: number;
  incarnation: string;
  spec: string;
  source: string;
  bundle_hash: string;
  bundle_bytes: number;
  created_at: number;
  updated_at: number;
}

function newIncarnation(): string {
  return `fi_${randomSecret(12)}`;
}

function toRecord(r: FunctionRow): FunctionRecord {
  return {
    namespace: r.namespace,
    name: r.name,
    version: r.version,
    incarnation: r.incarnation,
    spec: JSON.parse(r.spec) as FunctionSpec,
    source: JSON.parse(r.source) as unknown,
    bundleHash: r.bundle_hash,
    bundleBytes: r.bundle_bytes,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Store on SQLite (better-sqlite3) in WAL mode with synchronous=FULL: an acknowledged apply survives kill -9. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    const db = this.db;
    this.stmts = {
      getNs: db.prepare<[string], { name: string; created_at: number }>('SELECT name, created_at FROM namespaces WHERE name = ?'),
      insNs: db.prepare('INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)'),
      listNs: db.prepare<[], { name: string; created_at: number }>('SELECT name, created_at FROM namespaces ORDER BY name'),
      insKey: db.prepare('INSERT INTO api_keys (key_hash, namespace, label, created_at) VALUES (?, ?, ?, ?)'),
      getKey: db.prepare<[string], { namespace: string | null; label: string }>('SELECT namespace, label FROM api_keys WHERE key_hash = ?'),
      anyAdmin: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM api_keys WHERE namespace IS NULL'),
      getFn: db.prepare<[string, string], FunctionRow>('SELECT * FROM functions WHERE namespace = ? AND name = ?'),
      listFnNs: db.prepare<[string], FunctionRow>('SELECT * FROM functions WHERE namespace = ? ORDER BY name'),
      listFnAll: db.prepare<[], FunctionRow>('SELECT * FROM functions ORDER BY namespace, name'),
      upsertFn: db.prepare(
        `INSERT INTO functions (namespace, name, version, incarnation, spec, source, bundle_hash, bundle_bytes, created_at, updated_at)
         VALUES (@namespace, @name, @version, @incarnation, @spec, @source, @bundle_hash, @bundle_bytes, @created_at, @updated_at)
         ON CONFLICT(namespace, name) DO UPDATE SET version = excluded.version, incarnation = excluded.incarnation, spec = excluded.spec, source = excluded.source,
           bundle_hash = excluded.bundle_hash, bundle_bytes = excluded.bundle_bytes, updated_at = excluded.updated_at`,
      ),
      delFn: db.prepare('DELETE FROM functions WHERE namespace = ? AND name = ?'),
      insBundle: db.prepare('INSERT OR IGNORE INTO bundles (hash, data, size) VALUES (?, ?, ?)'),
      getBundle: db.prepare<[string], { data: Buffer }>('SELECT data FROM bundles WHERE hash = ?'),
      gcBundles: db.prepare('DELETE FROM bundles WHERE hash NOT IN (SELECT bundle_hash FROM functions)'),
      getSetting: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
      putSetting: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    };
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > SCHEMA_VERSION) {
      throw new Error(`database schema version ${current} is newer than this baton understands (${SCHEMA_VERSION}); upgrade baton`);
    }
    if (current < 1) {
      this.db.transaction(() => {
        this.db.exec(MIGRATION_1);
        this.db.pragma('user_version = 1');
      })();
    }
    if (current < 2) {
      this.db.transaction(() => {
        this.db.exec(MIGRATION_2);
        const rows = this.db.prepare<[], { namespace: string; name: string }>('SELECT namespace, name FROM functions').all();
        const set = this.db.prepare('UPDATE functions SET incarnation = ? WHERE namespace = ? AND name = ?');
        for (const r of rows) set.run(newIncarnation(), r.namespace, r.name);
        this.db.pragma('user_version = 2');
      })();
    }
    if (current < 3) {
      this.db.transaction(() => {
        this.db.exec(MIGRATION_3);
        this.db.pragma('user_version = 3');
      })();
    }
  }

  /** The connection, for the stores of user data kept in the same database (same layer only). */
  get database(): Database.Database {
    return this.db;
  }

  ensureNamespace(name: string, now: number): NamespaceRecord {
    this.stmts.insNs.run(name, now);
    const row = this.stmts.getNs.get(name);
    if (row === undefined) throw new Error(`namespace ${name} vanished`);
    return { name: row.name, createdAt: row.created_at };
  }

  getNamespace(name: string): NamespaceRecord | undefined {
    const row = this.stmts.getNs.get(name);
    return row === undefined ? undefined : { name: row.name, createdAt: row.created_at };
  }

  listNamespaces(): NamespaceRecord[] {
    return this.stmts.listNs.all().map((r) => ({ name: r.name, createdAt: r.created_at }));
  }

  addApiKey(keyHash: string, rec: ApiKeyRecord, now: number): void {
    this.stmts.insKey.run(keyHash, rec.namespace, rec.label, now);
  }

  findApiKey(keyHash: string): ApiKeyRecord | undefined {
    return this.stmts.getKey.get(keyHash);
  }

  hasAdminKey(): boolean {
    return (this.stmts.anyAdmin.get()?.n ?? 0) > 0;
  }

  putFunction(ns: string, name: string, spec: FunctionSpec, source: unknown, bundle: StoredBundle | undefined, now: number): PutFunctionResult {
    if (bundle !== undefined && !/^[0-9a-f]{64}$/.test(bundle.hash)) throw new Error(`bundle hash must be a hex sha256, got ${JSON.stringify(bundle.hash)}`);
    return this.db.transaction((): PutFunctionResult => {
      const existing = this.stmts.getFn.get(ns, name);
      const bundleHash = bundle === undefined || bundle.data.length === 0 ? '' : bundle.hash;
      if (bundle !== undefined && bundleHash !== '') this.stmts.insBundle.run(bundleHash, bundle.data, bundle.data.length);
      const specJson = JSON.stringify(spec);
      if (existing !== undefined && existing.spec === specJson && existing.bundle_hash === bundleHash) {
        return { record: toRecord(existing), outcome: 'unchanged' };
      }
      const row: FunctionRow = {
        namespace: ns,
        name,
        version: (existing?.version ?? 0) + 1,
        incarnation: existing?.incarnation ?? newIncarnation(),
        spec: specJson,
        source: JSON.stringify(source ?? null),
        bundle_hash: bundleHash,
        bundle_bytes: bundle?.data.length ?? 0,
        created_at: existing?.created_at ?? now,
        updated_at: now,
      };
      this.stmts.upsertFn.run(row);
      if (existing !== undefined && existing.bundle_hash !== bundleHash) this.stmts.gcBundles.run();
      return { record: toRecord(row), outcome: existing === undefined ? 'created' : 'updated' };
    })();
  }

  getFunction(ns: string, name: string): FunctionRecord | undefined {
    const row = this.stmts.getFn.get(ns, name);
    return row === undefined ? undefined : toRecord(row);
  }

  listFunctions(ns?: string): FunctionRecord[] {
    return (ns === undefined ? this.stmts.listFnAll.all() : this.stmts.listFnNs.all(ns)).map(toRecord);
  }

  deleteFunction(ns: string, name: string): boolean {
    return this.db.transaction(() => {
      const n = this.stmts.delFn.run(ns, name).changes;
      if (n > 0) this.stmts.gcBundles.run();
      return n > 0;
    })();
  }

  getBundle(hash: string): Uint8Array | undefined {
    return this.stmts.getBundle.get(hash)?.data;
  }

  getSetting(key: string): string | undefined {
    return this.stmts.getSetting.get(key)?.value;
  }

  putSetting(key: string, value: string): void {
    this.stmts.putSetting.run(key, value);
  }

  close(): void {
    this.db.close();
  }
}

