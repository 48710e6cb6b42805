import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import { decodeControlFrame, encodeFrame } from '../../src/protocol/codec.js';
import type { WorkerFrame } from '../../src/protocol/messages.js';

/** The uWS handlers the worker gateway registers for its endpoint. */
type Behavior = WebSocketBehavior<unknown>;

/**
 * Stands in for uWebSockets.js under the real WorkerGateway, so that a
 * benchmark can drive it without sockets: `mount(app)` registers its
 * handlers here, and each LinkedWorker goes through them as a connection
 * does — upgrade (join token check), open, then every frame as msgpack bytes
 * through `message`. What the gateway sends back arrives encoded, as on the
 * wire. Nothing here keeps state per sandbox: what the control plane holds is
 * what is measured.
 */
export class SocketlessApp {
  private behavior: Behavior | undefined;

  /** This object seen as the uWS app the gateway mounts itself on (only `ws` is used). */
  asTemplatedApp(): TemplatedApp {
    const app = {
      ws: (_pattern: string, behavior: Behavior) => {
        this.behavior = behavior;
        return app;
      },
    };
    return app as unknown as TemplatedApp;
  }

  /** A worker connects with this join token. */
  connect(joinToken: string): LinkedWorker {
    const b = this.behavior;
    if (b?.upgrade === undefined || b.open === undefined || b.message === undefined) throw new Error('the worker gateway has not mounted its WebSocket handlers');
    let userData: unknown;
    let refused: string | undefined;
    const res = {
      getRemoteAddressAsText: () => new TextEncoder().encode('127.0.0.1').buffer,
      upgrade: (data: unknown) => {
        userData = data;
      },
      writeStatus: (status: string) => {
        refused = status;
        return res;
      },
      writeHeader: () => res,
      end: () => res,
    };
    const headers: Record<string, string> = { authorization: `Bearer ${joinToken}`, 'sec-websocket-key': 'bench', 'sec-websocket-protocol': '', 'sec-websocket-extensions': '' };
    const req = { getHeader: (name: string) => headers[name] ?? '' };
    void b.upgrade(res as unknown as HttpResponse, req as unknown as HttpRequest, {});
    if (userData === undefined) throw new Error(`the worker gateway refused the upgrade: ${refused ?? 'no answer'}`);
    return new LinkedWorker(b, userData);
  }
}

/**
 * One emulated worker on the other end of a SocketlessApp link. It answers
 * nothing by itself: the benchmark decides when its sandboxes are reported
 * ready, so that creation and readiness can be measured apart.
 */
export class LinkedWorker {
  /** Sandboxes the control plane asked this worker to create, not yet reported ready. */
  private created: string[] = [];
  private nextPid = 1000;
  /** Set when the gateway closed the link (it should not). */
  closedWith: string | undefined;
  private readonly ws: WebSocket<unknown>;

  constructor(
    private readonly behavior: Behavior,
    userData: unknown,
  ) {
    const ws = {
      getUserData: () => userData,
      send: (message: Uint8Array) => {
        const f = decodeControlFrame(message);
        if (f.t === 'create') this.created.push(f.sandboxId);
        return 1;
      },
      end: (code: number, reason: string) => {
        this.closedWith = `${code} ${reason}`;
        behavior.close?.(this.ws, code, new TextEncoder().encode(reason).buffer);
      },
    };
    this.ws = ws as unknown as WebSocket<unknown>;
    void behavior.open?.(this.ws);
  }

  /** Send a frame to the control plane, encoded as a worker does. */
  deliver(frame: WorkerFrame): void {
    const bytes = encodeFrame(frame);
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    void this.behavior.message?.(this.ws, copy, true);
    if (this.closedWith !== undefined) throw new Error(`the control plane closed the link of a worker after a ${frame.t} frame: ${this.closedWith}`);
  }

  /** Report every sandbox created so far as ready, as a process worker does (with the pid of its process). */
  reportCreatedReady(): void {
    const ids = this.created;
    this.created = [];
    for (const sandboxId of ids) this.deliver({ t: 'sandboxReady', sandboxId, createMs: 12.5, pid: this.nextPid++ });
  }
}
