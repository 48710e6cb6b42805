import { readdir, readFile, readlink } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** Is something accepting connections on host:port? A connect attempt tells a live listener from leftovers. */
function someoneListens(host: string, port: number): Promise<boolean> {
  const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return new Promise((resolve) => {
    const sock = connect({ host: target, port, timeout: 1000 });
    const done = (listening: boolean): void => {
      sock.destroy();
      resolve(listening);
    };
    sock.once('connect', () => done(true));
    // a listener with a full backlog lets the SYN time out: still someone
    sock.once('timeout', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Why binding host:port fails for a plain Node server, or undefined if it binds (EACCES, EADDRNOTAVAIL, ...). */
function bindError(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/** A port the kernel considers free on host right now. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const addr = probe.address();
      probe.close(() => (addr !== null && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The socket inodes of LISTEN rows for `port` in the text of /proc/net/tcp or tcp6 (state 0A). */
export function listenerInodes(table: string, port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const out: string[] = [];
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const local = cols[1] ?? '';
    if (cols[3] === '0A' && local.slice(local.lastIndexOf(':') + 1) === hexPort) out.push(cols[9] ?? '');
  }
  return out;
}

/** Count LISTEN rows for `port` in the text of /proc/net/tcp or tcp6. */
export function countListeners(table: string, port: number): number {
  return listenerInodes(table, port).length;
}

/**
 * How many sockets of this network namespace listen on `port` (any address)
 * that are not this process's own: LISTEN rows of /proc/net/tcp and tcp6
 * whose inode is none of the sockets in /proc/self/fd. Every scheduler core
 * listens on the port (SO_REUSEPORT), so counting rows is not enough; a
 * foreign one is another process taking a share of the connections.
 * Undefined where /proc cannot be read.
 */
async function foreignListeners(port: number): Promise<number | undefined> {
  const inodes: string[] = [];
  let read = false;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      inodes.push(...listenerInodes(await readFile(f, 'utf8'), port));
      read = true;
    } catch {
      // no IPv6, or no /proc: the other file, or no check at all
    }
  }
  if (!read) return undefined;
  const ours = new Set<string>();
  try {
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m?.[1] !== undefined) ours.add(m[1]);
    }
  } catch {
    return undefined;
  }
  return inodes.filter((i) => !ours.has(i)).length;
}

/**
 * Listen so that the port is ours alone, and so that a restart after a crash
 * does not wait a minute. `start(port)` makes every scheduler core listen on
 * it (uWS sets SO_REUSEPORT on a fixed port by default, which is how several
 * cores share it) and `stop` undoes that.
 *
 * SO_REUSEPORT would also let a second control plane on the same port
 * silently take a share of the traffic. uWS's exclusive flag prevents that
 * but, measured with the uWS build we ship, leaves the accepted connections
 * without SO_REUSEADDR/SO_REUSEPORT, so after a kill -9 their TIME_WAIT
 * blocks the next bind of the port for up to 60 s (and the cores could not
 * share it). So:
 *   1. if something accepts connections on the port, stop with "address in use";
 *   2. start the cores listening with SO_REUSEPORT, which TIME_WAIT leftovers
 *      of a predecessor that did the same do not block;
 *   3. check in /proc/net/tcp{,6} that every listener on the port is one of
 *      this process's sockets: if another process started listening in the
 *      meantime, stop ours and fail with "address in use".
 * Leftovers of a predecessor that listened exclusively (older baton) still
 * block: those are waited out until `timeoutMs`, saying so.
 */
export async function listenExclusive<T>(o: { host: string; port: number; timeoutMs: number; log: Logger; start(port: number): Promise<T>; stop(started: T): Promise<void> }): Promise<{ port: number; started: T }> {
  const { host, timeoutMs, log } = o;
  const deadline = Date.now() + timeoutMs;
  // uWS sets no reuse flag on port 0, so a restart on the port it got would wait out
  // TIME_WAIT: take a free port from the kernel and listen on it as on a fixed one.
  const port = o.port === 0 ? await freePort(host) : o.port;
  const inUse = (): BatonError => new BatonError('conflict', `cannot listen on ${host}:${port}: address in use by another process (another control plane?); stop it or pick another port with --port`);
  let warned = false;
  for (;;) {
    if (await someoneListens(host, port)) throw inUse();
    let started: T;
    try {
      started = await o.start(port);
    } catch (e) {
      const why = await bindError(host, port);
      // the port binds: the failure was something else
      if (why === undefined) throw e;
      if (why !== 'EADDRINUSE') throw new BatonError('conflict', `cannot listen on ${host}:${port}: ${why}; check --host and --port`);
      if (Date.now() > deadline) {
        throw new BatonError('conflict', `cannot listen on ${host}:${port}: the port stayed blocked for ${Math.round(timeoutMs / 1000)} s although nothing accepts connections there (connections in TIME_WAIT, or a listener on another address); pick another with --port`);
      }
      if (!warned) {
        warned = true;
        log.warn({ host, port, waitS: Math.round(timeoutMs / 1000) }, 'port busy but nobody listens: if a control plane just exited, its old connections hold the port for up to 60 s (TIME_WAIT) - retrying');
      }
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (((await foreignListeners(port)) ?? 0) > 0) {
      await o.stop(started);
      throw inUse();
    }
    return { port, started };
  }
}
