import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { packDirectory } from '../../common/bundle.js';
import type { FunctionView } from '../../controlplane/function-service.js';
import { BatonError } from '../../common/errors.js';
import { call, check, CliError, request, resolveTarget, whoami, type ClientOptions } from '../client.js';
import { loadManifest } from '../manifest.js';
import { printRows } from '../output.js';

type Global = ClientOptions & { output: string; namespace?: string };

async function namespaceOf(t: ReturnType<typeof resolveTarget>, explicit: string | undefined): Promise<string> {
  return explicit ?? (await whoami(t)).namespace;
}

/** `-d data`, `-d @file`, `-d -` (stdin). */
export function readData(spec: string | undefined, stdin: () => Buffer = () => readFileSync(0)): Uint8Array | undefined {
  if (spec === undefined) return undefined;
  if (spec === '-') return stdin();
  if (spec.startsWith('@')) {
    try {
      return readFileSync(spec.slice(1));
    } catch (e) {
      throw new CliError(`-d ${spec}: cannot read file: ${(e as Error).message}`);
    }
  }
  return Buffer.from(spec);
}

export function registerFunctionCommands(program: Command, globals: () => Global): void {
  program
    .command('deploy')
    .description('apply a baton.yaml: create or update its functions (idempotent)')
    .requiredOption('-f, --file <file>', 'manifest (YAML or JSON)')
    .option('-n, --namespace <ns>', 'namespace (default: the manifest\'s, else your key\'s)')
    .action(async (o: { file: string; namespace?: string }) => {
      let manifest;
      try {
        manifest = loadManifest(o.file);
      } catch (e) {
        throw new CliError(e instanceof BatonError ? e.message : String(e));
      }
      const t = resolveTarget(globals());
      const ns = o.namespace ?? manifest.namespace ?? (await whoami(t)).namespace;
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
    });

  const fn = program.command('fn').description('list, show and delete functions');
  fn.command('ls')
    .description('list functions')
    .option('-n, --namespace <ns>', 'namespace (default: your key\'s)')
    .action(async (o: { namespace?: string }) => {
      const g = globals();
      const t = resolveTarget(g);
      const ns = await namespaceOf(t, o.namespace);
      const r = await call<{ functions: FunctionView[] }>(t, 'GET', `/v1/namespaces/${ns}/functions`);
      printRows(
        r.functions.map((f) => ({ name: f.name, runtime: f.runtime, class: f.priceClass, version: f.version, scale: `${f.scale.min}-${f.scale.max}`, ready: f.status.ready, inflight: f.status.inflight, queued: f.status.queued })),
        ['name', 'runtime', 'class', 'version', 'scale', 'ready', 'inflight', 'queued'],
        g.output,
        r,
      );
    });
  fn.command('get <name>')
    .description('show one function')
    .option('-n, --namespace <ns>', 'namespace')
    .action(async (name: string, o: { namespace?: string }) => {
      const t = resolveTarget(globals());
      const ns = await namespaceOf(t, o.namespace);
      const r = await call<{ function: FunctionView }>(t, 'GET', `/v1/namespaces/${ns}/functions/${name}`);
      process.stdout.write(`${JSON.stringify(r.function, null, 2)}\n`);
    });
  fn.command('rm <name>')
    .description('delete a function')
    .option('-n, --namespace <ns>', 'namespace')
    .action(async (name: string, o: { namespace?: string }) => {
      const t = resolveTarget(globals());
      const ns = await namespaceOf(t, o.namespace);
      await call(t, 'DELETE', `/v1/namespaces/${ns}/functions/${name}`);
      process.stdout.write(`${name}: deleted\n`);
    });

  const ns = program.command('ns').description('namespaces (tenants), admin only');
  ns.command('create <name>')
    .description('create a namespace and print its API key (shown once)')
    .action(async (name: string) => {
      const g = globals();
      const r = await call<{ namespace: string; apiKey: string }>(resolveTarget(g), 'POST', '/v1/namespaces', { name });
      if (g.output === 'json') process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else process.stdout.write(`namespace: ${r.namespace}\napi key: ${r.apiKey}\n(keep the key: it is stored hashed and cannot be shown again)\n`);
    });
  ns.command('ls')
    .description('list namespaces')
    .action(async () => {
      const g = globals();
      const r = await call<{ namespaces: { name: string; createdAt: string; functions: number }[] }>(resolveTarget(g), 'GET', '/v1/namespaces');
      printRows(r.namespaces, ['name', 'functions', 'createdAt'], g.output, r);
    });

  program
    .command('invoke <fn>')
    .description('call a function synchronously and print its response body (fn or fn.namespace)')
    .option('-d, --data <data>', 'request body: text, @file, or - for stdin')
    .option('-X, --method <method>', 'HTTP method', 'POST')
    .option('-H, --header <header...>', 'extra request header "Name: value"')
    .option('--price-class <class>', 'price class of this call')
    .option('-v, --verbose', 'print status, call id and timing to stderr')
    .action(async (name: string, o: { data?: string; method: string; header?: string[]; priceClass?: string; verbose?: boolean }) => {
      const t = resolveTarget(globals());
      const headers: Record<string, string> = {};
      for (const h of o.header ?? []) {
        const i = h.indexOf(':');
        if (i <= 0) throw new CliError(`-H "${h}": expected "Name: value"`);
        headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      if (o.priceClass !== undefined) headers['x-price-class'] = o.priceClass;
      const body = readData(o.data);
      const r = await request(t, o.method.toUpperCase(), `/function/${encodeURIComponent(name)}`, body ?? new Uint8Array(), headers);
      if (o.verbose === true) {
        process.stderr.write(`status: ${r.status}\ncall id: ${r.headers.get('x-call-id') ?? '-'}\nserver-timing: ${r.headers.get('server-timing') ?? '-'}\n`);
      }
      check(r);
      process.stdout.write(r.body);
      if (process.stdout.isTTY && r.body.length > 0 && r.body[r.body.length - 1] !== 10) process.stdout.write('\n');
    });
}
