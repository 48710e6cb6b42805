import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay between workers and a control plane, for fault tests: it can cut
 * every connection (the worker sees a dropped link and reconnects), refuse new
 * ones for a while, and point at another control plane (a restarted one on a
 * new port) without the worker's URL changing.
 */
export class LinkProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private refusing = false;
  port = 0;

  constructor(private targetPort: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(this.targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const close = (): void => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Drop every open connection (both ends see it closed). */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** Refuse new connections until told otherwise. */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  retarget(port: number): void {
    this.targetPort = port;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => (this.server === undefined ? r() : this.server.close(() => r())));
  }
}
