import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js';
import type { Logger } from '../common/logger.js';
import { tokenMatches } from '../controlplane/auth.js';

/**
 * The upgrade of a worker's WebSocket (control link or data link): only with
 * `Authorization: Bearer <join token>`; otherwise 401 with a JSON error, and
 * a warning naming the remote address and `what` was refused. `data` builds
 * the connection's user data from the remote address.
 */
export function upgradeWorker<T>(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, joinTokenHash: string, log: Logger, what: string, data: (remote: string) => T): void {
  // everything uWS's request holds is read before it goes away
  const auth = req.getHeader('authorization');
  const key = req.getHeader('sec-websocket-key');
  const protocol = req.getHeader('sec-websocket-protocol');
  const extensions = req.getHeader('sec-websocket-extensions');
  const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  if (m === null || !tokenMatches(m[1] ?? '', joinTokenHash)) {
    log.warn({ remote }, `${what} rejected: missing or wrong join token`);
    res.writeStatus('401 Unauthorized').writeHeader('content-type', 'application/json');
    res.end(JSON.stringify({ error: { code: 'unauthorized', message: 'worker join token missing or wrong' } }));
    return;
  }
  res.upgrade<T>(data(remote), key, protocol, extensions, context);
}
