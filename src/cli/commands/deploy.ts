import { packDirectory } from '../../common/bundle.js';
import { BatonError } from '../../common/errors.js';
import type { FunctionView } from '../../controlplane/function-service.js';
import { CliError } from '../cli-error.js';
import { call, resolveTarget, whoami } from '../client.js';
import type { Invocation } from '../command-table.js';
import { loadManifest, type Manifest } from '../manifest.js';
import { formatBytes, StatusLine } from '../status-line.js';

function readManifest(file: string): Manifest {
  try {
    return loadManifest(file);
  } catch (e) {
    throw new CliError(e instanceof BatonError ? e.message : String(e));
  }
}

/**
 * `baton deploy -f baton.yaml`: bundle and apply each function in turn. One
 * result line per function on stdout; on a terminal, stderr shows which
 * function is being packed or uploaded meanwhile.
 */
export async function run({ opts, globals }: Invocation<{ file: string; namespace?: string }>): Promise<void> {
  const status = new StatusLine();
  try {
    status.show(`reading ${opts.file}`);
    const manifest = readManifest(opts.file);
    const t = resolveTarget(globals);
    const ns = opts.namespace ?? manifest.namespace ?? (await whoami(t)).namespace;
    const total = manifest.functions.length;
    for (const [i, fn] of manifest.functions.entries()) {
      const step = total > 1 ? `${fn.name} (${i + 1}/${total})` : fn.name;
      status.show(`${step}: packing ${fn.dir}`);
      let bundle: Uint8Array;
      try {
        bundle = await packDirectory(fn.dir);
      } catch (e) {
        throw new CliError(`${fn.name}: cannot bundle ${fn.dir}: ${(e as Error).message}`);
      }
      status.show(`${step}: uploading ${formatBytes(bundle.length)} to namespace ${ns}`);
      const r = await call<{ function: FunctionView; outcome: string }>(t, 'PUT', `/v1/namespaces/${ns}/functions/${fn.name}`, {
        spec: fn.spec,
        bundle: Buffer.from(bundle).toString('base64'),
      });
      status.clear();
      process.stdout.write(`${fn.name}: ${r.outcome} (namespace ${ns}, version ${r.function.version}, bundle ${bundle.length} bytes)\n`);
    }
  } finally {
    status.clear();
  }
}
