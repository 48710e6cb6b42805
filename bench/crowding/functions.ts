import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packDirectory } from '../../src/common/bundle.js';
import { apiJson, type Started } from '../lib/processes.js';

/**
 * A node function that burns a fixed amount of CPU per call: it spins until
 * its process has used SPIN_MS of CPU time (not wall time, so a call that
 * has to share or wait for a core takes longer instead of doing less work),
 * and answers with the CPU it used and the wall time the spin took. The gap
 * between the two is time the handler was off the CPU: frozen by a higher
 * class, or waiting for the OS to give it a core.
 */
const SPIN_SOURCE = `const SPIN_MS = Number(process.env.SPIN_MS);
function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
let sink = 1;
export default {
  fetch() {
    const w0 = performance.now();
    const c0 = cpuMs();
    let c = c0;
    while (c - c0 < SPIN_MS) {
      for (let i = 0; i < 5000; i++) sink = (sink * 1103515245 + 12345) >>> 0;
      c = cpuMs();
    }
    return { cpuMs: c - c0, wallMs: performance.now() - w0, sink };
  },
};
`;

export interface SpinFunction {
  name: string;
  priceClass: 'critical' | 'batch';
  spinMs: number;
  /** Sandboxes kept warm for it (scale.min = scale.max: none are created or removed during a phase). */
  sandboxes: number;
}

/** Functions of one run: the critical one and one batch function per spin time, each with enough sandboxes for its share of the load. */
export function planFunctions(o: { criticalMs: number; batchMs: readonly number[]; batchInflight: number; workers: number }): { critical: SpinFunction; batch: SpinFunction[] } {
  // enough critical sandboxes that calls rarely queue in the control plane even when sharing cores makes each one slow:
  // the comparison is about what the machine does to a call, not about the size of a pool
  const critical: SpinFunction = { name: 'crit', priceClass: 'critical', spinMs: o.criticalMs, sandboxes: 8 * o.workers };
  const batch = o.batchMs.map((ms, i): SpinFunction => {
    // closed-loop client k calls batch function k % n: one sandbox per outstanding call
    const share = Math.floor(o.batchInflight / o.batchMs.length) + (i < o.batchInflight % o.batchMs.length ? 1 : 0);
    return { name: `batch-${i}-${String(ms).replace('.', 'p')}ms`, priceClass: 'batch', spinMs: ms, sandboxes: Math.max(1, share) };
  });
  return { critical, batch };
}

export async function deployFunctions(cp: Started, dir: string, fns: readonly SpinFunction[]): Promise<void> {
  const src = join(dir, 'spin-fn');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'index.js'), SPIN_SOURCE);
  const bundle = Buffer.from(await packDirectory(src)).toString('base64');
  for (const f of fns) {
    await apiJson(cp, 'PUT', `/v1/namespaces/default/functions/${f.name}`, {
      spec: {
        runtime: 'node',
        handler: 'index.js',
        priceClass: f.priceClass,
        env: { SPIN_MS: String(f.spinMs) },
        concurrency: 1,
        scale: { min: f.sandboxes, max: f.sandboxes, keepAlive: '10m' },
        timeout: '60s',
      },
      bundle,
    });
  }
}
