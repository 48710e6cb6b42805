import { externalTool, type CommandSpec, type OptionSpec } from './command-table.js';
import { duration, nonNegativeInt, nonNegativeNumber } from './parsers.js';

/**
 * Every `baton` command, in the order `baton --help` lists them. `baton a b`
 * is implemented by src/cli/commands/a/b.ts (`baton a` by commands/a.ts), which
 * exports `run(invocation)` and is imported only when the command runs. Keep
 * this file free of imports beyond the command table and the option parsers:
 * it is loaded by every command, `--version` included.
 */

const namespaceOption: OptionSpec = { flags: '-n, --namespace <ns>', description: 'namespace' };
const logLevelOption = (): OptionSpec => ({ flags: '--log-level <level>', description: 'fatal, error, warn, info, debug', default: process.env['BATON_LOG_LEVEL'] ?? 'info' });

const controlPlaneOptions = (): OptionSpec[] => [
  { flags: '--host <host>', description: 'address to listen on', default: '127.0.0.1' },
  { flags: '--port <port>', description: 'port to listen on (0 = any free port)', parse: nonNegativeInt('--port'), default: 8080 },
  { flags: '--data-dir <dir>', description: 'where SQLite and credentials.json live', default: '.baton' },
  { flags: '--heartbeat-timeout <duration>', description: 'declare a silent worker dead after this long', parse: duration('--heartbeat-timeout'), default: 15_000 },
  { flags: '--autoscaler-tick <duration>', description: 'autoscaler period', parse: duration('--autoscaler-tick'), default: 1000 },
  { flags: '--max-queue <n>', description: 'queued calls per function before 503', parse: nonNegativeInt('--max-queue'), default: 10_000 },
  { flags: '--max-wait <duration>', description: 'how long a call may wait for a sandbox (apart from its execution timeout)', parse: duration('--max-wait'), default: 30_000 },
  { flags: '--max-response <bytes>', description: 'largest response body of a call (larger ones fail with 502 response_too_large)', parse: nonNegativeInt('--max-response'), default: 16 * 1024 * 1024 },
  { flags: '--max-pending-async <n>', description: 'async calls accepted and not yet ended before new ones get 503', parse: nonNegativeInt('--max-pending-async'), default: 10_000 },
  { flags: '--activation-retention <duration>', description: 'how long records and results of async calls are kept', parse: duration('--activation-retention'), default: 7 * 24 * 3600_000 },
  { flags: '--price-classes <list>', description: 'price classes and their prices per CPU-second (µ¢), e.g. batch=0.5,standard=1,interactive=1.5,critical=2' },
  { flags: '--memory-price <price>', description: 'price of a GB-second of memory, the same for every class (µ¢)', parse: nonNegativeNumber('--memory-price'), default: 0.25 },
  { flags: '--scheduler-threads <n>', description: 'scheduler cores: worker threads that each own a shard of the functions and serve calls (default: CPU cores - 1, at least 1; docs/architecture.md)', parse: nonNegativeInt('--scheduler-threads') },
  { flags: '--max-workers <n>', description: 'workers tracked at once (slots in the shared capacity)', parse: nonNegativeInt('--max-workers'), default: 4096 },
  { flags: '--max-call-depth <n>', description: 'deepest a call chain (ctx.invoke) may go; deeper calls fail with chain_too_deep', parse: nonNegativeInt('--max-call-depth'), default: 16 },
  logLevelOption(),
];

const workerOptions = (): OptionSpec[] => [
  { flags: '--control-plane <url>', description: 'ws://HOST:PORT of the control plane (default: from ./.baton/credentials.json)' },
  { flags: '--join-token-file <path>', description: 'read the worker join token from this file (else BATON_JOIN_TOKEN, else ./.baton/credentials.json)' },
  { flags: '--join-token <token>', description: 'the join token itself (discouraged: visible to every local user in the process list)' },
  { flags: '--cores <n>', description: 'cores to offer (default: all)', parse: nonNegativeInt('--cores') },
  { flags: '--memory <mb>', description: "memory offered to sandboxes, MB (default: the machine's less a reserve); kept by class under pressure", parse: nonNegativeInt('--memory') },
  { flags: '--runtime <kind>', description: 'process (real sandboxes) or emulated (records only, for scale tests)', default: 'process' },
  { flags: '--state-dir <dir>', description: 'node identity, bundle cache, pid ledger', default: '.baton/worker' },
  { flags: '--name <name>', description: 'node name shown in `baton nodes`' },
  { flags: '--stem-cells <n>', description: 'pre-started node runners kept warm', parse: nonNegativeInt('--stem-cells') },
  { flags: '--isolation <mode>', description: 'auto (own uid, namespaces and cgroups when run as root) or off', default: 'auto' },
  { flags: '--sandbox-uids <range>', description: 'uids reserved for sandboxes, START-END (default: 1024 uids derived from the node id)' },
  { flags: '--sandbox-pids <n>', description: 'processes and threads one sandbox may have', parse: nonNegativeInt('--sandbox-pids'), default: 512 },
  { flags: '--scratch-mb <mb>', description: "size of each sandbox's private /tmp (counts toward its memory)", parse: nonNegativeInt('--scratch-mb'), default: 256 },
  { flags: '--no-classes', description: 'do not enforce price classes on this machine: every call runs at once and the OS shares the cores (a baseline for comparisons)' },
  { flags: '--drain-timeout <duration>', description: 'on SIGTERM, how long to let running calls finish', parse: duration('--drain-timeout'), default: 30_000 },
  logLevelOption(),
];

/** A benchmark or the simulator: code outside src/cli that parses its own arguments (`baton sim --help`). */
function tool(path: string[], description: string, module: string, entry: string): CommandSpec {
  return { path, description, passThrough: true, load: externalTool(new URL(module, import.meta.url), entry, path) };
}

export function commandTable(): CommandSpec[] {
  return [
    // servers
    { path: ['controlplane'], description: 'run the control plane (HTTP API, worker endpoint, scheduler)', options: controlPlaneOptions(), load: () => import('./commands/controlplane.js') },
    { path: ['worker'], description: 'run a worker daemon that joins a control plane and runs sandboxes', options: workerOptions(), load: () => import('./commands/worker.js') },
    { path: ['dev'], description: 'start a local cluster: a control plane and one process worker', options: controlPlaneOptions(), load: () => import('./commands/dev.js') },

    // functions
    {
      path: ['deploy'],
      description: 'apply a baton.yaml: create or update its functions (idempotent)',
      options: [
        { flags: '-f, --file <file>', description: 'manifest (YAML or JSON)', required: true },
        { flags: '-n, --namespace <ns>', description: "namespace (default: the manifest's, else your key's)" },
      ],
      load: () => import('./commands/deploy.js'),
    },
    { path: ['fn'], description: 'list, show and delete functions' },
    { path: ['fn', 'ls'], description: 'list functions', options: [{ flags: '-n, --namespace <ns>', description: "namespace (default: your key's)" }], load: () => import('./commands/fn/ls.js') },
    { path: ['fn', 'get'], description: 'show one function', args: ['<name>'], options: [namespaceOption], load: () => import('./commands/fn/get.js') },
    { path: ['fn', 'rm'], description: 'delete a function', args: ['<name>'], options: [namespaceOption], load: () => import('./commands/fn/rm.js') },

    {
      path: ['logs'],
      description: "print a function's stdout/stderr lines, oldest first: TIME CALLID STREAM LINE",
      args: ['<fn>'],
      options: [
        { flags: '-n, --namespace <ns>', description: "namespace (default: your key's)" },
        { flags: '--since <when>', description: 'only lines from this long ago (30s, 5m, 1h) or since a date-time (2025-01-31T12:00:00Z)' },
        { flags: '--call <id>', description: 'only the lines of this call (its X-Call-Id)' },
        { flags: '--limit <n>', description: 'at most this many lines, the newest (per poll with --follow)', default: '1000' },
        { flags: '-f, --follow', description: 'keep printing new lines until interrupted (Ctrl-C)' },
        { flags: '--interval <duration>', description: 'with --follow: how often to look for new lines', default: '1000ms' },
      ],
      load: () => import('./commands/logs.js'),
    },

    // namespaces
    { path: ['ns'], description: 'namespaces (tenants), admin only' },
    { path: ['ns', 'create'], description: 'create a namespace and print its API key (shown once)', args: ['<name>'], load: () => import('./commands/ns/create.js') },
    { path: ['ns', 'ls'], description: 'list namespaces', load: () => import('./commands/ns/ls.js') },
    { path: ['ns', 'budget'], description: "show a namespace's monthly budget (spend, pace, throttled classes), or set it (admin); 'none' removes it", args: ['<ns>', '[amount]'], load: () => import('./commands/ns/budget.js') },

    // calls
    {
      path: ['invoke'],
      description: 'call a function synchronously and print its response body (fn or fn.namespace)',
      args: ['<fn>'],
      options: [
        { flags: '-d, --data <data>', description: 'request body: text, @file, or - for stdin' },
        { flags: '-X, --method <method>', description: 'HTTP method', default: 'POST' },
        { flags: '-H, --header <header...>', description: 'extra request header "Name: value"' },
        { flags: '--price-class <class>', description: 'price class of this call' },
        { flags: '-v, --verbose', description: 'print status, call id and timing to stderr' },
        { flags: '--async', description: 'accept the call to run later and print its id (see baton activation)' },
        { flags: '--callback-url <url>', description: 'with --async: POST the result here when the call ends' },
      ],
      load: () => import('./commands/invoke.js'),
    },
    { path: ['activation'], description: 'records of calls: their status, metering, results and logs' },
    { path: ['activation', 'ls'], description: 'list the newest records', options: [namespaceOption, { flags: '--function <fn>', description: 'only this function' }, { flags: '--since <when>', description: 'only calls since then: a duration ago (5m), an ISO date or epoch ms' }, { flags: '--limit <n>', description: 'at most this many (1-1000)', default: '50' }], load: () => import('./commands/activation/ls.js') },
    { path: ['activation', 'get'], description: 'one record', args: ['<id>'], options: [namespaceOption], load: () => import('./commands/activation/get.js') },
    { path: ['activation', 'result'], description: "an async call's result, as the call would have answered (body to stdout)", args: ['<id>'], options: [namespaceOption], load: () => import('./commands/activation/result.js') },
    { path: ['activation', 'logs'], description: 'the log lines a call wrote', args: ['<id>'], options: [namespaceOption], load: () => import('./commands/activation/logs.js') },
    { path: ['usage'], description: 'CPU, memory and cost of a namespace, by class and function (default: this month)', options: [namespaceOption, { flags: '--from <when>', description: 'from (ISO date, epoch ms, or a duration ago)' }, { flags: '--to <when>', description: 'to (default: now)' }], load: () => import('./commands/usage.js') },

    // cluster
    { path: ['nodes'], description: 'list workers', load: () => import('./commands/nodes.js') },
    { path: ['status'], description: 'cluster summary', load: () => import('./commands/status.js') },

    // benchmarks and the simulator (see bench/README.md)
    { path: ['bench'], description: 'benchmarks (see bench/README.md)' },
    tool(['bench', 'churn'], 'sandbox churn: cold-start sweep against emulated workers (Dirigent method)', '../../bench/churn/run.js', 'runChurnCli'),
    tool(['bench', 'crowding'], 'critical latency alone, under a batch flood, and with price classes off (real process sandboxes)', '../../bench/crowding/run.js', 'runCrowdingCli'),
    tool(['bench', 'coldstart'], 'real cold starts on the node runtime, end to end', '../../bench/coldstart/run.js', 'runColdStartCli'),
    tool(['bench', 'cli'], 'CLI start time: median and p90 of baton --version, fn ls and invoke, each a new process', '../../bench/cli/run.js', 'runCliStartCli'),
    tool(['bench', 'warm'], 'warm-path throughput and control-plane overhead (emulated sandboxes)', '../../bench/warm/run.js', 'runWarmCli'),
    tool(['bench', 'sched'], 'scheduling decisions/s with 1 and 2 threads, no network: the shared core pool, and cold invocations through the real data plane', '../../bench/sched/run.js', 'runSchedCli'),
    tool(['bench', 'memory'], 'control-plane heap per sandbox and per function (real control-plane objects, emulated workers)', '../../bench/memory/run.js', 'runMemoryCli'),
    tool(['sim'], 'price-class scheduling simulator (`baton sim --help`)', '../sim/cli.js', 'runSimCli'),
  ];
}
