import type { FunctionSpec } from '../common/function-spec.js';

export interface NamespaceRecord {
  name: string;
  createdAt: number;
}

export interface FunctionRecord {
  namespace: string;
  name: string;
  /** Increases by one every time the definition or the bundle changes. */
  version: number;
  /**
   * Random id of this incarnation: kept across updates, new when the function
   * is deleted and created again (whose versions start again at 1), so a worker's
   * sandbox of the old incarnation is never adopted as the new function.
   */
  incarnation: string;
  spec: FunctionSpec;
  /** The definition as the user wrote it (for GET and idempotent apply). */
  source: unknown;
  bundleHash: string;
  bundleBytes: number;
  createdAt: number;
  updatedAt: number;
}

export interface ApiKeyRecord {
  /** null for an admin key. */
  namespace: string | null;
  label: string;
}

/** A bundle to store, with its content address (sha256 of `data`, hex). */
export interface StoredBundle {
  data: Uint8Array;
  hash: string;
}

export interface PutFunctionResult {
  record: FunctionRecord;
  /** 'unchanged' when the same definition and bundle were applied again. */
  outcome: 'created' | 'updated' | 'unchanged';
}

/**
 * Durable state: namespaces, hashed API keys, function definitions and bundles.
 * Nothing on the invocation path touches it.
 */
export interface Store {
  ensureNamespace(name: string, now: number): NamespaceRecord;
  getNamespace(name: string): NamespaceRecord | undefined;
  listNamespaces(): NamespaceRecord[];

  addApiKey(keyHash: string, rec: ApiKeyRecord, now: number): void;
  findApiKey(keyHash: string): ApiKeyRecord | undefined;
  hasAdminKey(): boolean;

  /**
   * Apply a definition. The caller has checked the bundle and hashed it (off
   * the main thread: hashing tens of MB must not happen inside the write).
   */
  putFunction(
    ns: string,
    name: string,
    spec: FunctionSpec,
    source: unknown,
    bundle: StoredBundle | undefined,
    now: number,
  ): PutFunctionResult;
  getFunction(ns: string, name: string): FunctionRecord | undefined;
  listFunctions(ns?: string): FunctionRecord[];
  deleteFunction(ns: string, name: string): boolean;
  getBundle(hash: string): Uint8Array | undefined;

  getSetting(key: string): string | undefined;
  putSetting(key: string, value: string): void;

  close(): void;
}
