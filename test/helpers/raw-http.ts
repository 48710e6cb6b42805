import { connect } from 'node:net';

/**
 * HTTP/1.1 over a raw TCP socket, for requests no well-behaved client would
 * send: malformed request lines, control bytes, bad Content-Length, pipelines,
 * bodies cut off mid-way. Parses the responses that come back (uWS always
 * answers with Content-Length) and reports how the connection ended.
 */
export interface RawResponse {
  status: number;
  /** Header lines in order, names lower-cased (duplicates kept). */
  headers: [string, string][];
  body: Buffer;
}

export interface RawOutcome {
  responses: RawResponse[];
  /** The server closed the connection (or reset it) before we stopped waiting. */
  closedByServer: boolean;
  /** We gave up after timeoutMs with the connection still open. */
  timedOut: boolean;
  /** From the first byte written until the last response parsed, or the close. */
  ms: number;
  /** Bytes received that did not form a complete response. */
  leftover: number;
  /** The response bytes were not HTTP/1.1 as we know it. */
  garbled?: string;
}

export interface RawOptions {
  /** Responses to wait for before hanging up ourselves (0: wait for the server to close). */
  expect: number;
  timeoutMs: number;
  /** Per expected response: true if it answers a HEAD (no body whatever Content-Length says). */
  head?: boolean[];
  /** Close our side right after writing (an abrupt disconnect, e.g. mid-body). */
  hangUpAfterWrite?: boolean;
  /** Write the request in pieces, this many ms apart. */
  pieces?: { parts: (Buffer | string)[]; gapMs: number };
  /** Requests written one at a time on the same connection, each once the previous one's response has arrived (after `data`). */
  then?: (Buffer | string)[];
}

export function header(r: RawResponse, name: string): string[] {
  return r.headers.filter(([k]) => k === name).map(([, v]) => v);
}

/** Parse as many complete responses as `buf` holds; returns them and the bytes consumed. */
function parseResponses(buf: Buffer, head: boolean[], already: number): { out: RawResponse[]; used: number; garbled?: string } {
  const out: RawResponse[] = [];
  let pos = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', pos);
    if (end === -1) return { out, used: pos };
    const lines = buf.subarray(pos, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (m === null) return { out, used: pos, garbled: `bad status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}` };
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) return { out, used: pos, garbled: `bad header line ${JSON.stringify(line.slice(0, 80))}` };
      headers.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
    }
    const status = Number(m[1]);
    const cl = headers.filter(([k]) => k === 'content-length');
    if (headers.some(([k]) => k === 'transfer-encoding')) return { out, used: pos, garbled: 'chunked response (never sent by us)' };
    const isHead = head[already + out.length] === true;
    const informational = status >= 100 && status < 200;
    if (cl.length !== 1 && !informational) return { out, used: pos, garbled: `${cl.length} Content-Length headers` };
    const length = informational || isHead ? 0 : Number(cl[0]?.[1]);
    if (!Number.isSafeInteger(length) || length < 0) return { out, used: pos, garbled: `bad Content-Length ${cl[0]?.[1]}` };
    if (buf.length < end + 4 + length) return { out, used: pos };
    if (!informational) out.push({ status, headers, body: Buffer.from(buf.subarray(end + 4, end + 4 + length)) });
    pos = end + 4 + length;
  }
}

export function rawRequest(port: number, data: Buffer | string, o: RawOptions): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let buf = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let garbled: string | undefined;
    let done = false;
    const sock = connect(port, '127.0.0.1');
    const finish = (closedByServer: boolean, timedOut: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const r: RawOutcome = { responses, closedByServer, timedOut, ms: performance.now() - t0, leftover: buf.length };
      if (garbled !== undefined) r.garbled = garbled;
      resolve(r);
    };
    const timer = setTimeout(() => finish(false, true), o.timeoutMs);
    sock.setNoDelay(true);
    sock.on('connect', () => {
      if (o.pieces === undefined) {
        if (o.hangUpAfterWrite === true) sock.write(data, () => finish(false, false));
        else sock.write(data);
        return;
      }
      const parts = [...o.pieces.parts];
      const next = (): void => {
        if (done) return;
        const p = parts.shift();
        if (p === undefined) return;
        sock.write(p);
        setTimeout(next, o.pieces?.gapMs ?? 0);
      };
      next();
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const { out, used, garbled: g } = parseResponses(buf, o.head ?? [], responses.length);
      responses.push(...out);
      buf = buf.subarray(used);
      for (let i = 0; i < out.length; i++) {
        const next = o.then?.shift();
        if (next !== undefined && !done) sock.write(next);
      }
      if (g !== undefined) {
        garbled = g;
        finish(false, false);
      } else if (o.expect > 0 && responses.length >= o.expect) finish(false, false);
    });
    sock.on('error', () => finish(true, false));
    sock.on('close', () => finish(true, false));
  });
}
