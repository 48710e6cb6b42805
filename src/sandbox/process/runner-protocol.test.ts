import { describe, expect, it } from 'vitest';
import { MAX_CHAIN_HEADER_BYTES, parseChainCall } from './runner-protocol.js';

describe('parseChainCall (a call message from the function\'s own process)', () => {
  const good = { t: 'call', id: 3, reqId: 7, function: 'next', method: 'POST', path: '/x?y=1', headers: { 'content-type': 'application/json' }, body: new Uint8Array([1]) };

  it('accepts a well-formed call, with or without a class', () => {
    expect(parseChainCall(good)).toEqual({ ok: true, id: 3, reqId: 7, req: { function: 'next', method: 'POST', path: '/x?y=1', headers: { 'content-type': 'application/json' }, body: new Uint8Array([1]) } });
    const withClass = parseChainCall({ ...good, priceClass: 'critical' });
    expect(withClass.ok && withClass.req.priceClass).toBe('critical');
  });

  it('refuses anything else, saying which field, and keeps the reqId to answer when it can', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, function: '' }, /function name/],
      [{ ...good, function: 42 }, /function name/],
      [{ ...good, function: 'f'.repeat(129) }, /function name/],
      [{ ...good, method: 'M'.repeat(17) }, /method/],
      [{ ...good, method: undefined }, /method/],
      [{ ...good, path: 'no-slash' }, /path must be a string starting with "\/"/],
      [{ ...good, headers: { a: 1 } }, /headers/],
      [{ ...good, headers: ['a'] }, /headers/],
      [{ ...good, body: 'text' }, /body must be bytes/],
      [{ ...good, priceClass: 3 }, /priceClass/],
      [{ ...good, id: -1 }, /id must be/],
      [{ ...good, headers: { big: 'x'.repeat(MAX_CHAIN_HEADER_BYTES) } }, /exceed the limit/],
    ];
    for (const [m, why] of cases) {
      const r = parseChainCall(m);
      expect(r.ok, JSON.stringify(m).slice(0, 80)).toBe(false);
      if (!r.ok) {
        expect(r.reqId).toBe(7);
        expect(r.message).toMatch(why);
      }
    }
    const noReq = parseChainCall({ ...good, reqId: 'x' });
    expect(noReq).toMatchObject({ ok: false, reqId: undefined });
  });
});
