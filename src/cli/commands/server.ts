import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { parseDuration } from '../../common/duration.js';
import { createRootLogger } from '../../common/logger.js';
import type { WorkerOptions } from '../../worker/worker-daemon.js';
import { CliError } from '../client.js';

const BIN = fileURLToPath(new URL('../../../../bin/baton.js', import.meta.url));

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new CliError(`${name}: expected a non-negative integer, got "${v}"`);
    return n;
  };
}

function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new CliError(`${name}: expected a non-negative number, got "${v}"`);
    return n;
  };
}

/** `batch=0.5,standard=1,…` → the price class definitions (validated by PriceClassSet at start). */
function parsePriceClasses(text: string): { name: string; price: number }[] {
  return text.split(',').map((part) => {
    const m = /^\s*([a-z][a-z0-9-]*)\s*=\s*([0-9.]+)\s*$/.exec(part);
    if (m === null) throw new CliError(`--price-classes: expected name=price[,name=price…], got "${part}"`);
    return { name: m[1] as string, price: Number(m[2]) };
  });
}

function ms(name: string) {
  return (v: string): number => {
    try {
      return parseDuration(v, name);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  };
}

interface CpFlags {
  host: string;
  port: number;
  dataDir: string;
  heartbeatTimeout: number;
  autoscalerTick: number;
  maxQueue: number;
  maxWait: number;
  maxResponse: number;
  maxPendingAsync: number;
  activationRetention: number;
  priceClasses?: string;
  memoryPrice: number;
  maxCallDepth: number;
  logLevel: string;
}

function cpOptions(cmd: Command, defaultPort: number): Command {
  return cmd
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', int('--port'), defaultPort)
    .option('--data-dir <dir>', 'where SQLite and credentials.json live', '.baton')
    .option('--heartbeat-timeout <duration>', 'declare a silent worker dead after this long', ms('--heartbeat-timeout'), 15_000)
    .option('--autoscaler-tick <duration>', 'autoscaler period', ms('--autoscaler-tick'), 1000)
    .option('--max-queue <n>', 'queued calls per function before 503', int('--max-queue'), 10_000)
    .option('--max-wait <duration>', 'how long a call may wait for a sandbox (apart from its execution timeout)', ms('--max-wait'), 30_000)
    .option('--max-response <bytes>', 'largest response body of a call (larger ones fail with 502 response_too_large)', int('--max-response'), 16 * 1024 * 1024)
    .option('--max-pending-async <n>', 'async calls accepted and not yet ended before new ones get 503', int('--max-pending-async'), 10_000)
    .option('--activation-retention <duration>', 'how long records and results of async calls are kept', ms('--activation-retention'), 7 * 24 * 3600_000)
    .option('--price-classes <list>', 'price classes and their prices per CPU-second, e.g. batch=0.5,standard=1,interactive=1.5,critical=2')
    .option('--memory-price <price>', 'price of a GB-second of memory, for every class', num('--memory-price'), 0.25)
    .option('--max-call-depth <n>', 'deepest call a call chain (ctx.invoke) may make; deeper ones fail with chain_too_deep', int('--max-call-depth'), 16)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', process.env['BATON_LOG_LEVEL'] ?? 'info');
}

async function startCp(f: CpFlags, name: string) {
  const logger = createRootLogger({ level: f.logLevel, name });
  (await import('../../common/process-guard.js')).installProcessGuard(logger.child({ component: 'process-guard' }), 'control plane');
  const { startControlPlane } = await import('../../controlplane/control-plane.js');
  const opts: Parameters<typeof startControlPlane>[0] = {
    host: f.host,
    port: f.port,
    dataDir: resolve(f.dataDir),
    logger,
    heartbeatTimeoutMs: f.heartbeatTimeout,
    autoscalerTickMs: f.autoscalerTick,
    maxQueuePerFunction: Math.max(1, f.maxQueue),
    maxWaitMs: Math.max(1, f.maxWait),
    maxResponseBytes: Math.max(1, f.maxResponse),
    maxPendingAsync: Math.max(1, f.maxPendingAsync),
    activationRetentionMs: f.activationRetention,
    memoryPrice: f.memoryPrice,
    maxCallDepth: Math.max(1, f.maxCallDepth),
  };
  if (f.priceClasses !== undefined) opts.priceClasses = parsePriceClasses(f.priceClasses);
  const key = process.env['BATON_API_KEY'];
  const token = process.env['BATON_JOIN_TOKEN'];
  if (key !== undefined && key !== '') opts.apiKey = key;
  if (token !== undefined && token !== '') opts.joinToken = token;
  const cp = await startControlPlane(opts);
  return { cp, logger };
}

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
async function joinToken(f: WorkerFlags): Promise<string | undefined> {
  if (f.joinTokenFile !== undefined) {
    const { readFileSync } = await import('node:fs');
    try {
      const t = readFileSync(f.joinTokenFile, 'utf8').trim();
      if (t === '') throw new CliError(`--join-token-file: ${f.joinTokenFile} is empty`);
      return t;
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(`--join-token-file: cannot read ${f.joinTokenFile}: ${(e as Error).message}`);
    }
  }
  return f.joinToken ?? (process.env['BATON_JOIN_TOKEN'] || undefined);
}

async function workerOptions(f: WorkerFlags) {
  if (f.runtime !== 'process' && f.runtime !== 'emulated') throw new CliError(`--runtime: expected process or emulated, got "${f.runtime}"`);
  if (f.isolation !== 'auto' && f.isolation !== 'off') throw new CliError(`--isolation: expected auto or off, got "${f.isolation}"`);
  let url = f.controlPlane;
  let token = await joinToken(f);
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

export function registerServerCommands(program: Command): void {
  cpOptions(program.command('controlplane').description('run the control plane (HTTP API, worker endpoint, scheduler)'), 8080).action(async (f: CpFlags) => {
    const { cp, logger } = await startCp(f, 'baton-controlplane');
    process.stdout.write(`gateway: ${cp.url}\ncredentials: ${cp.credentialsPath}\n`);
    await new Promise<void>((done) => {
      const stop = (): void => void cp.stop().then(done);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    logger.flush();
  });

  program
    .command('worker')
    .description('run a worker daemon that joins a control plane and runs sandboxes')
    .option('--control-plane <url>', 'ws://HOST:PORT of the control plane (default: from ./.baton/credentials.json)')
    .option('--join-token-file <path>', 'read the worker join token from this file (else BATON_JOIN_TOKEN, else ./.baton/credentials.json)')
    .option('--join-token <token>', 'the join token itself (discouraged: visible to every local user in the process list)')
    .option('--cores <n>', 'cores to offer (default: all)', int('--cores'))
    .option('--memory <mb>', 'memory offered to sandboxes, MB (default: the machine\'s less a reserve); kept by class under pressure', int('--memory'))
    .option('--runtime <kind>', 'process (real sandboxes) or emulated (records only, for scale tests)', 'process')
    .option('--state-dir <dir>', 'node identity, bundle cache, pid ledger', '.baton/worker')
    .option('--name <name>', 'node name shown in `baton nodes`')
    .option('--stem-cells <n>', 'pre-started node runners kept warm', int('--stem-cells'))
    .option('--isolation <mode>', 'auto (own uid, namespaces and cgroups when run as root) or off', 'auto')
    .option('--sandbox-uids <range>', 'uids reserved for sandboxes, START-END (default: 1024 uids derived from the node id)')
    .option('--sandbox-pids <n>', 'processes and threads one sandbox may have', int('--sandbox-pids'), 512)
    .option('--scratch-mb <mb>', 'size of each sandbox\'s private /tmp (counts toward its memory)', int('--scratch-mb'), 256)
    .option('--no-classes', 'do not enforce price classes on this machine: every call runs at once and the OS shares the cores (a baseline for comparisons)')
    .option('--drain-timeout <duration>', 'on SIGTERM, how long to let running calls finish', ms('--drain-timeout'), 30_000)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', process.env['BATON_LOG_LEVEL'] ?? 'info')
    .action(async (f: WorkerFlags) => {
      const { runWorkerFromCli } = await import('../../worker/main.js');
      await runWorkerFromCli(await workerOptions(f));
    });

  cpOptions(program.command('dev').description('start a local cluster: a control plane and one process worker'), 8080).action(async (f: CpFlags) => {
    const { cp, logger } = await startCp(f, 'baton-dev');
    let worker: ChildProcess | undefined;
    let stopping = false;
    let restarts = 0;
    const startWorkerChild = (): void => {
      // The token goes by environment, never on a command line; the IPC channel tells the
      // worker when this process is gone, even after kill -9, so it never outlives us.
      worker = spawn(
        process.execPath,
        [BIN, 'worker', '--control-plane', cp.url.replace(/^http/, 'ws'), '--state-dir', resolve(f.dataDir, 'worker'), '--name', 'local', '--log-level', f.logLevel],
        { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: { ...process.env, BATON_JOIN_TOKEN: cp.credentials.joinToken } },
      );
      worker.on('error', (e) => logger.error({ err: e }, 'cannot start the local worker'));
      worker.on('exit', (code, signal) => {
        if (stopping) return;
        restarts++;
        const delay = Math.min(10_000, 250 * 2 ** Math.min(restarts, 6));
        logger.error({ code, signal, restartInMs: delay }, 'local worker exited; restarting it');
        setTimeout(startWorkerChild, delay);
      });
    };
    startWorkerChild();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await fetch(`${cp.url}/readyz`).catch(() => undefined);
      if (res?.status === 200) break;
      if (Date.now() > deadline) {
        process.stderr.write('baton dev: the local worker did not join within 20 s; check the log above\n');
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    process.stdout.write(
      [
        '',
        `gateway: ${cp.url}`,
        `api key: ${cp.credentials.apiKey}`,
        `credentials: ${cp.credentialsPath}`,
        '',
        'try:',
        '  npx baton deploy -f examples/hello/baton.yaml',
        '  npx baton invoke hello -d world',
        `  curl -s -X POST ${cp.url}/function/hello -H "Authorization: Bearer $(node -p "require('./${f.dataDir.replace(/^\.\//, '')}/credentials.json').apiKey")" -d world`,
        '',
        'Ctrl-C stops the cluster.',
        '',
      ].join('\n'),
    );
    await new Promise<void>((done) => {
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        const w = worker;
        const finish = (): void => void cp.stop().then(done);
        if (w === undefined || w.exitCode !== null || w.signalCode !== null) finish();
        else {
          w.once('exit', finish);
          w.kill('SIGTERM');
        }
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    logger.flush();
  });
}
