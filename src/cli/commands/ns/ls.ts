import { call, resolveTarget } from '../../client.js';
import type { Invocation } from '../../command-table.js';
import { printRows } from '../../output.js';

/** `baton ns ls`: every namespace with its function count (admin key). */
export async function run({ globals }: Invocation): Promise<void> {
  const r = await call<{ namespaces: { name: string; createdAt: string; functions: number }[] }>(resolveTarget(globals), 'GET', '/v1/namespaces');
  printRows(r.namespaces, ['name', 'functions', 'createdAt'], globals.output, r);
}
