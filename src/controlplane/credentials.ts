import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Credentials {
  gateway: string;
  apiKey: string;
  joinToken: string;
}

export const CREDENTIALS_FILE = 'credentials.json';

export function readCredentials(dataDir: string): Partial<Credentials> | undefined {
  const path = join(dataDir, CREDENTIALS_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    const out: Partial<Credentials> = {};
    if (typeof raw['gateway'] === 'string') out.gateway = raw['gateway'];
    if (typeof raw['apiKey'] === 'string') out.apiKey = raw['apiKey'];
    if (typeof raw['joinToken'] === 'string') out.joinToken = raw['joinToken'];
    return out;
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}); fix or remove it`, { cause: e });
  }
}

/** Write atomically with owner-only permissions (0600). */
export function writeCredentials(dataDir: string, creds: Credentials): string {
  const path = join(dataDir, CREDENTIALS_FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}
