import { connect, createServer } from 'node:net';
import type uws from 'uWebSockets.js';
import { BatonError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** uWS's LIBUS_LISTEN_EXCLUSIVE_PORT (the binding exports the value, not the enum its types declare). */
const LISTEN_EXCLUSIVE_PORT = 1;
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

/**
 * Listen so that the port is ours alone. By default uWS sets SO_REUSEPORT on a
 * fixed port, which lets a second control plane on the same port silently take
 * half the traffic; with the exclusive flag the second bind fails, and if
 * something accepts connections there we stop with "address in use".
 *
 * A failed bind with nobody listening is a predecessor's connections in
 * TIME_WAIT (up to 60 s on Linux after a crash), and is waited out until
 * `timeoutMs`. Measured with the uWS build we ship: a listener on port 0 gets
 * neither SO_REUSEADDR nor SO_REUSEPORT, and the connections it accepted keep
 * blocking a later bind of that port (even one with SO_REUSEADDR, so a Node
 * bind probe cannot tell them from a live listener: a connect probe can).
 */
export async function listenExclusive(app: uws.TemplatedApp, host: string, port: number, timeoutMs: number, log: Logger): Promise<uws.us_listen_socket> {
  const deadline = Date.now() + timeoutMs;
  const listen = (app.listen as unknown as ListenWithOptions).bind(app);
  let warned = false;
  for (;;) {
    const s = await new Promise<uws.us_listen_socket | false>((resolve) => listen(host, port, LISTEN_EXCLUSIVE_PORT, resolve));
    if (s !== false) return s;
    if (port !== 0 && (await someoneListens(host, port))) {
      throw new BatonError('conflict', `cannot listen on ${host}:${port}: address in use by another process (another control plane?); stop it or pick another port with --port`);
    }
    const why = await bindError(host, port);
    if (why !== undefined && why !== 'EADDRINUSE') throw new BatonError('conflict', `cannot listen on ${host}:${port}: ${why}; check --host and --port`);
    if (port === 0 || Date.now() > deadline) {
      throw new BatonError('conflict', `cannot listen on ${host}:${port}: the port stayed blocked for ${Math.round(timeoutMs / 1000)} s although nothing accepts connections there (connections in TIME_WAIT, or a listener on another address); pick another with --port`);
    }
    if (!warned) {
      warned = true;
      log.warn({ host, port, waitS: Math.round(timeoutMs / 1000) }, 'port busy but nobody listens: if a control plane just exited, its old connections hold the port for up to 60 s (TIME_WAIT) - retrying');
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
