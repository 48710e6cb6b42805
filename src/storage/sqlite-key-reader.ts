import Database from 'better-sqlite3';
import type { ApiKeyRecord } from './store.js';

/**
 * API-key lookups for a scheduler core: its own read-only connection to the
 * control plane's SQLite database (WAL lets it read while the main thread
 * writes), used only the first time a key is seen (Authenticator caches).
 */
export class SqliteKeyReader {
  private readonly db: Database.Database;
  private readonly get: Database.Statement<[string], ApiKeyRecord>;

  constructor(path: string) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.get = this.db.prepare<[string], ApiKeyRecord>('SELECT namespace, label FROM api_keys WHERE key_hash = ?');
  }

  findApiKey(keyHash: string): ApiKeyRecord | undefined {
    return this.get.get(keyHash);
  }

  addApiKey(): void {
    throw new Error('a scheduler core does not issue API keys (the main thread does)');
  }

  close(): void {
    this.db.close();
  }
}
