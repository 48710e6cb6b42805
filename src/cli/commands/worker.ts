import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { WorkerOptions } from '../../worker/worker-daemon.js';
import { CliError } from '../cli-error.js';
import type { Invocation } from '../command-table.js';

interface WorkerFlags {
  controlPlane?: string;
  joinTokenFile?: string;
  joinToken?: string;
  cores?: number;
  memory?: number;
  runtime: string;
  stateDir: string;
  name?: string;
  stemCells?: number;
  isolation: string;
  sandboxUids?: string;
  sandboxPids: number;
  scratchMb: number;
  drainTimeout: number;
  classes: boolean;
  logLevel: string;
}

/** The join token from --join-token-file, --join-token, BATON_JOIN_TOKEN or ./.baton/credentials.json, in that order. */
function joinToken(f: WorkerFlags): string | undefined {
  if (f.joinTokenFile !== undefined) {
    let t: string;
    try {
      t = readFileSync(f.joinTokenFile, 'utf8').trim();
    } catch (e) {
      throw new CliError(`--join-token-file: cannot read ${f.joinTokenFile}: ${(e as Error).message}`);
    }
    if (t === '') throw new CliError(`--join-token-file: ${f.joinTokenFile} is empty`);
    return t;
  }
  return f.joinToken ?? (process.env['BATON_JOIN_TOKEN'] || undefined);
}

async function workerOptions(f: WorkerFlags) {
  if (f.runtime !== 'process' && f.runtime !== 'emulated') throw new CliError(`--runtime: expected process or emulated, got "${f.runtime}"`);
  if (f.isolation !== 'auto' && f.isolation !== 'off') throw new CliError(`--isolation: expected auto or off, got "${f.isolation}"`);
  let url = f.controlPlane;
  let token = joinToken(f);
  if (url === undefined || token === undefined) {
    const { readCredentials } = await import('../../controlplane/credentials.js');
    const c = readCredentials('.baton');
    url ??= c?.gateway?.replace(/^http/, 'ws');
    token ??= c?.joinToken;
  }
  if (url === undefined) throw new CliError('--control-plane: required (ws://HOST:PORT), or run in a directory with .baton/credentials.json');
  if (token === undefined) throw new CliError('no join token: set BATON_JOIN_TOKEN or pass --join-token-file, or run in a directory with .baton/credentials.json');
  // Nothing the worker starts may inherit it.
  delete process.env['BATON_JOIN_TOKEN'];
  const isolation: NonNullable<WorkerOptions['isolation']> = { mode: f.isolation, pidsMax: Math.max(1, f.sandboxPids), scratchMb: Math.max(1, f.scratchMb) };
  if (f.sandboxUids !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(f.sandboxUids);
    if (m === null || Number(m[2]) < Number(m[1])) throw new CliError(`--sandbox-uids: expected START-END with START ≤ END, got "${f.sandboxUids}"`);
    isolation.uidBase = Number(m[1]);
    isolation.uidCount = Number(m[2]) - Number(m[1]) + 1;
  }
  const opts: Omit<WorkerOptions, 'logger'> & { logLevel?: string } = {
    controlPlane: url,
    joinToken: token,
    runtime: f.runtime,
    stateDir: resolve(f.stateDir),
    logLevel: f.logLevel,
    isolation,
    drainTimeoutMs: f.drainTimeout,
    classes: f.classes,
  };
  if (f.cores !== undefined) opts.cores = f.cores;
  if (f.memory !== undefined) opts.memoryMb = f.memory;
  if (f.name !== undefined) opts.name = f.name;
  if (f.stemCells !== undefined) opts.stemCells = f.stemCells;
  return opts;
}

/** `baton worker`: check the flags, then load and run the worker daemon. */
export async function run({ opts }: Invocation<WorkerFlags>): Promise<void> {
  const options = await workerOptions(opts);
  const { runWorkerFromCli } = await import('../../worker/main.js');
  await runWorkerFromCli(options);
}
