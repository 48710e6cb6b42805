import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import uws from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** uWS's default listen options (LIBUS_LISTEN_DEFAULT): SO_REUSEPORT on a fixed port. */
const LISTEN_REUSE_PORT = 0;
type ListenCallback = (s: uws.us_listen_socket | false) => void;
/** `listen(host, port, options, cb)`: the native binding takes it; its type declarations only list `listen(port, options, cb)`. */
type ListenWithOptions = (host: string, port: number, options: number, cb: ListenCallback) => uws.TemplatedApp;

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

/**
 * How many sockets of this network namespace listen on `port` (any address),
 * from /proc/net/tcp and tcp6 (state 0A = LISTEN); undefined where they cannot be read.
 * Pure parsing is in {@link countListeners}.
 */
async function listenersOn(port: number): Promise<number | undefined> {
  let n = 0;
  let read = false;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      n += countListeners(await readFile(f, 'utf8'), port);
      read = true;
    } catch {
      // no IPv6, or no /proc: the other file, or no check at all
    }
  }
  return read ? n : undefined;
}

/** Count LISTEN rows for `port` in the text of /proc/net/tcp or tcp6. */
export function countListeners(table: string, port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4) continue;
    const local = cols[1] ?? '';
    if (cols[3] === '0A' && local.slice(local.lastIndexOf(':') + 1) === hexPort) n++;
  }
  return n;
}

/**
 * Listen so that the port is ours alone, and so that a restart after a crash
 * does not wait a minute.
 *
 * uWS sets SO_REUSEPORT on a fixed port by default, which would let a second
 * control plane on the same port silently take half the traffic. Its exclusive
 * flag prevents that but, measured with the uWS build we ship, leaves the
 * accepted connections without SO_REUSEADDR/SO_REUSEPORT, so after a kill -9
 * their TIME_WAIT blocks the next bind of the port for up to 60 s. So:
 *   1. if something accepts connections on the port, stop with "address in use";
 *   2. listen with SO_REUSEPORT, which TIME_WAIT leftovers of a predecessor that
 *      did the same do not block;
 *   3. count the port's listeners in /proc/net/tcp{,6}: if another process
 *      started listening in the meantime, close ours and stop with "address in use".
 * Leftovers of a predecessor that listened exclusively (older baton) still block:
 * those are waited out until `timeoutMs`, saying so.
 */
export async function listenExclusive(app: uws.TemplatedApp, host: string, port: number, timeoutMs: number, log: Logger): Promise<uws.us_listen_socket> {
  const deadline = Date.now() + timeoutMs;
  const listen = (app.listen as unknown as ListenWithOptions).bind(app);
  const inUse = (): BatonError => new BatonError('conflict', `cannot listen on ${host}:${port}: address in use by another process (another control plane?); stop it or pick another port with --port`);
  let warned = false;
  // uWS sets no reuse flag on port 0, so a restart on the port it got would wait out
  // TIME_WAIT: take a free port from the kernel and listen on it as on a fixed one.
  if (port === 0) port = await freePort(host);
  for (;;) {
    if (await someoneListens(host, port)) throw inUse();
    const s = await new Promise<uws.us_listen_socket | false>((resolve) => listen(host, port, LISTEN_REUSE_PORT, resolve));
    if (s !== false) {
      if (((await listenersOn(port)) ?? 1) > 1) {
        uws.us_listen_socket_close(s);
        throw inUse();
      }
      return s;
    }
    const why = await bindError(host, port);
    if (why !== undefined && why !== 'EADDRINUSE') throw new BatonError('conflict', `cannot listen on ${host}:${port}: ${why}; check --host and --port`);
    if (Date.now() > deadline) {
      throw new BatonError('conflict', `cannot listen on ${host}:${port}: the port stayed blocked for ${Math.round(timeoutMs / 1000)} s although nothing accepts connections there (connections in TIME_WAIT, or a listener on another address); pick another with --port`);
    }
    if (!warned) {
      warned = true;
      log.warn({ host, port, waitS: Math.round(timeoutMs / 1000) }, 'port busy but nobody listens: if a control plane just exited, its old connections hold the port for up to 60 s (TIME_WAIT) - retrying');
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
