import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compileFunctionSpec } from '../src/common/function-spec.js';
import { sha256Hex } from '../src/common/ids.js';
import { SqliteStore } from '../src/storage/sqlite-store.js';

describe('SqliteStore', () => {
  let dir: string;
  let store: SqliteStore;
  const spec = compileFunctionSpec({ runtime: 'node', handler: 'index.js' });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-store-'));
    store = new SqliteStore(join(dir, 'baton.db'));
    store.ensureNamespace('default', 1);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies idempotently and bumps the version only on change', () => {
    const data = new Uint8Array([1, 2, 3]);
    const bundle = { data, hash: sha256Hex(data) };
    const a = store.putFunction('default', 'hello', spec, { runtime: 'node' }, bundle, 10);
    expect(a.outcome).toBe('created');
    expect(a.record.version).toBe(1);
    const b = store.putFunction('default', 'hello', spec, { runtime: 'node' }, bundle, 20);
    expect(b.outcome).toBe('unchanged');
    expect(b.record.version).toBe(1);
    const c = store.putFunction('default', 'hello', spec, { runtime: 'node' }, { data: new Uint8Array([9]), hash: sha256Hex(new Uint8Array([9])) }, 30);
    expect(c.outcome).toBe('updated');
    expect(c.record.version).toBe(2);
    expect(c.record.createdAt).toBe(10);
    expect(c.record.bundleHash).toBe(sha256Hex(new Uint8Array([9])));
    expect(store.getBundle(c.record.bundleHash)).toEqual(Buffer.from([9]));
    // the old bundle is no longer referenced and is collected
    expect(store.getBundle(a.record.bundleHash)).toBeUndefined();
  });

  it('keeps the incarnation across updates and issues a new one after delete and re-create', () => {
    const stored = (...bytes: number[]): { data: Uint8Array; hash: string } => ({ data: new Uint8Array(bytes), hash: sha256Hex(new Uint8Array(bytes)) });
    const a = store.putFunction('default', 'f', spec, {}, stored(1), 1).record;
    const b = store.putFunction('default', 'f', spec, {}, stored(2), 2).record;
    expect(b.version).toBe(2);
    expect(b.incarnation).toBe(a.incarnation);
    expect(store.deleteFunction('default', 'f')).toBe(true);
    const c = store.putFunction('default', 'f', spec, {}, stored(1), 3).record;
    expect(c.version).toBe(1);
    expect(c.incarnation).not.toBe(a.incarnation);
    expect(c.incarnation).toMatch(/^fi_/);
  });

  it('survives reopening: functions, keys and settings persist', () => {
    store.putFunction('default', 'hello', spec, {}, undefined, 1);
    store.addApiKey('h1', { namespace: null, label: 'admin' }, 1);
    store.putSetting('joinTokenHash', 'x');
    store.close();
    store = new SqliteStore(join(dir, 'baton.db'));
    expect(store.getFunction('default', 'hello')?.spec).toEqual(spec);
    expect(store.findApiKey('h1')).toEqual({ namespace: null, label: 'admin' });
    expect(store.hasAdminKey()).toBe(true);
    expect(store.getSetting('joinTokenHash')).toBe('x');
  });

  it('deletes functions and lists by namespace', () => {
    store.ensureNamespace('team-a', 2);
    store.putFunction('default', 'one', spec, {}, undefined, 1);
    store.putFunction('team-a', 'two', spec, {}, undefined, 1);
    expect(store.listFunctions('team-a').map((f) => f.name)).toEqual(['two']);
    expect(store.listFunctions().length).toBe(2);
    expect(store.deleteFunction('default', 'one')).toBe(true);
    expect(store.deleteFunction('default', 'one')).toBe(false);
    expect(store.getFunction('default', 'one')).toBeUndefined();
  });

  it('stores a bundle under the hash it is given and refuses one that is not a sha256', () => {
    const data = new Uint8Array([4, 5]);
    const r = store.putFunction('default', 'h', spec, {}, { data, hash: sha256Hex(data) }, 1);
    expect(store.getBundle(sha256Hex(data))).toEqual(Buffer.from([4, 5]));
    expect(r.record.bundleBytes).toBe(2);
    expect(() => store.putFunction('default', 'h', spec, {}, { data, hash: 'abc' }, 2)).toThrow(/hex sha256/);
    expect(store.getFunction('default', 'h')?.version).toBe(1);
  });

  it('rejects a function in an unknown namespace', () => {
    expect(() => store.putFunction('nope', 'x', spec, {}, undefined, 1)).toThrow(/FOREIGN KEY/);
  });
});
