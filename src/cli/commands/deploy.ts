import { packDirectory } from '../../common/bundle.js';
import { BatonError } from '../../common/errors.js';
import type { FunctionView } from '../../controlplane/function-service.js';
import { CliError } from '../cli-error.js';
import { call, resolveTarget, whoami } from '../client.js';
import type { Invocation } from '../command-table.js';
import { loadManifest, type Manifest } from '../manifest.js';

function readManifest(file: string): Manifest {
  try {
    return loadManifest(file);
  } catch (e) {
    throw new CliError(e instanceof BatonError ? e.message : String(e));
  }
}

/** `baton deploy -f baton.yaml`: bundle and apply each function in turn, one result line per function on stdout. */
export async function run({ opts, globals }: Invocation<{ file: string; namespace?: string }>): Promise<void> {
  const manifest = readManifest(opts.file);
  const t = resolveTarget(globals);
  const ns = opts.namespace ?? manifest.namespace ?? (await whoami(t)).namespace;
  for (const fn of manifest.functions) {
    let bundle: Uint8Array;
    try {
      bundle = await packDirectory(fn.dir);
    } catch (e) {
      throw new CliError(`${fn.name}: cannot bundle ${fn.dir}: ${(e as Error).message}`);
    }
    const r = await call<{ function: FunctionView; outcome: string }>(t, 'PUT', `/v1/namespaces/${ns}/functions/${fn.name}`, {
      spec: fn.spec,
      bundle: Buffer.from(bundle).toString('base64'),
    });
    process.stdout.write(`${fn.name}: ${r.outcome} (namespace ${ns}, version ${r.function.version}, bundle ${bundle.length} bytes)\n`);
  }
}
