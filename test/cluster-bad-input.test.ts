import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../src/protocol/codec.js';
import { CloseCode, PROTOCOL_VERSION, WORKER_PATH } from '../src/protocol/messages.js';
import { FIXTURES, api, deploy, startControlPlane, startWorker, stopAll, type CpHandle } from './helpers/cluster.js';

/** Open a worker socket, send frames, and report how the control plane closed it. */
function rawWorker(cp: CpHandle, frames: (Uint8Array | string)[], token = cp.joinToken): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(cp.url.replace(/^http/, 'ws') + WORKER_PATH, { headers: { authorization: `Bearer ${token}` } });
    ws.on('open', () => {
      for (const f of frames) ws.send(f);
    });
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('unexpected-response', (_req, res) => resolve({ code: res.statusCode ?? 0, reason: 'http' }));
    ws.on('error', (e) => reject(e));
  });
}

const hello = (over: Record<string, unknown> = {}): Uint8Array =>
  encodeFrame({ t: 'hello', protocol: PROTOCOL_VERSION, nodeId: 'rogue', name: 'rogue', cores: 1, memoryMb: 100, runtime: 'emulated', sandboxes: [], ...over } as never);

describe('bad input never takes the control plane down', () => {
  let cp: CpHandle;
  const dirs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    dirs.push(cp.dataDir);
    dirs.push((await startWorker(cp)).stateDir);
    await deploy(cp, 'hello', { runtime: 'node', handler: 'index.js' }, join(FIXTURES, 'cp-hello'));
  });
  afterAll(() => stopAll(dirs));

  const err = (r: { body: unknown }): { code: string; message: string } => (r.body as { error: { code: string; message: string } }).error;

  it('malformed JSON → 400 naming the problem', async () => {
    const r = await api(cp, 'PUT', '/v1/namespaces/default/functions/x', '{"spec": ');
    expect(r.status).toBe(400);
    expect(err(r).code).toBe('bad_request');
    expect(err(r).message).toMatch(/not valid JSON/);
  });

  it('invalid manifest → 400 naming the field', async () => {
    const r = await api(cp, 'PUT', '/v1/namespaces/default/functions/x', { spec: { runtime: 'node', handler: 'i.js', scale: { max: -1 }, timeout: 'soon' } });
    expect(r.status).toBe(400);
    expect(err(r).code).toBe('invalid_manifest');
    expect(err(r).message).toContain('spec.scale.max');
    expect(err(r).message).toContain('spec.timeout');
    const cls = await api(cp, 'PUT', '/v1/namespaces/default/functions/x', { spec: { runtime: 'http', command: ['x'], priceClass: 'gold' } });
    expect(err(cls).message).toContain('spec.priceClass');
    const name = await api(cp, 'PUT', '/v1/namespaces/default/functions/Bad_Name', { spec: { runtime: 'http', command: ['x'] } });
    expect(name.status).toBe(400);
    expect(err(name).message).toContain('Bad_Name');
  });

  it('unknown function → 404, unknown endpoint → 404, wrong method → 405', async () => {
    const r = await api(cp, 'POST', '/function/nope', 'x');
    expect(r.status).toBe(404);
    expect(err(r).message).toContain('nope');
    expect((await api(cp, 'GET', '/v2/whatever')).status).toBe(404);
    expect((await api(cp, 'PATCH', '/v1/namespaces/default/functions/hello')).status).toBe(405);
  });

  it('oversize invocation body → 413', async () => {
    const big = new Uint8Array(7 * 1024 * 1024);
    const r = await api(cp, 'POST', '/function/hello', big);
    expect(r.status).toBe(413);
    expect(err(r).code).toBe('payload_too_large');
  });

  it('unknown price class header → 400', async () => {
    const res = await fetch(`${cp.url}/function/hello`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}`, 'x-price-class': 'platinum' } });
    expect(res.status).toBe(400);
  });

  it('garbage, wrong-version, out-of-order and unauthenticated worker frames close only that connection', async () => {
    const garbage = await rawWorker(cp, [new Uint8Array([0xc1, 0xff, 0x00, 0x13])]);
    expect(garbage.code).toBe(CloseCode.badFrame);
    const text = await rawWorker(cp, ['{"t":"hello"}']);
    expect(text.code).toBe(CloseCode.badFrame);
    const wrongVersion = await rawWorker(cp, [hello({ protocol: 99 })]);
    expect(wrongVersion.code).toBe(CloseCode.wrongVersion);
    expect(wrongVersion.reason).toContain('99');
    const invalid = await rawWorker(cp, [hello({ cores: 'many' })]);
    expect(invalid.code).toBe(CloseCode.badFrame);
    expect(invalid.reason).toContain('cores');
    const early = await rawWorker(cp, [encodeFrame({ t: 'heartbeat', freeMemoryMb: 1, sandboxes: 0 })]);
    expect(early.code).toBe(CloseCode.badFrame);
    const afterHello = await rawWorker(cp, [hello({ nodeId: 'rogue2', name: 'rogue2' }), encodeFrame({ t: 'result', callId: 'c', status: 999 } as never)]);
    expect(afterHello.code).toBe(CloseCode.badFrame);
    const noToken = await rawWorker(cp, [hello()], 'wrong-token');
    expect(noToken.code).toBe(401);
  });

  it('still serves after all of the above', async () => {
    expect((await api(cp, 'GET', '/healthz')).status).toBe(200);
    const r = await api(cp, 'POST', '/function/hello', 'still here');
    expect(r.status).toBe(200);
    expect(r.text).toBe('hello still here');
    const metrics = await api(cp, 'GET', '/metrics');
    expect(metrics.text).toMatch(/baton_worker_bad_frames_total \d+/);
    expect(cp.proc.exitCode).toBeNull();
  });
});
