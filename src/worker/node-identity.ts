import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

/** A worker's node id, created once and kept in its state dir so restarts keep the same identity. */
export function loadNodeId(stateDir: string): string {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, 'node.json');
  if (existsSync(path)) {
    try {
      const raw = JSON.parse(readFileSync(path, 'utf8')) as { nodeId?: unknown };
      if (typeof raw.nodeId === 'string' && raw.nodeId.length > 0) return raw.nodeId;
    } catch (e) {
      throw new Error(`${path} is corrupt (${(e as Error).message}); remove it to give this worker a new identity`, { cause: e });
    }
  }
  const nodeId = `node-${randomUUID()}`;
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ nodeId, createdAt: new Date().toISOString() })}\n`);
  renameSync(tmp, path);
  return nodeId;
}
