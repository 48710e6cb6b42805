import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { createRng } from '../policies/rng.js';
import { decodeControlFrame, decodeWorkerFrame } from './codec.js';
import { invokeFrame, resultFrame } from './messages.js';

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

const goodResult = (): Record<string, unknown> => ({ t: 'result', callId: 'c1', sandboxId: 's1', status: 200, headers: { a: 'b' }, body: new Uint8Array([1]), execMs: 1.5, cpuMs: 1, mbMs: 2, preemptMs: 0, waitMs: 0 });
const goodInvoke = (): Record<string, unknown> => ({ t: 'invoke', callId: 'c1', sandboxId: 's1', method: 'POST', path: '/', headers: {}, body: new Uint8Array(), timeoutMs: 1000, priceClass: 'batch', parentId: 'p1' });

/** Values a field may be mutated to. */
const WEIRD: unknown[] = [undefined, null, '', 'x'.repeat(200), -1, 0, 1.5, 99, 600, 2 ** 53, Number.NaN, Infinity, 'str', true, [], {}, { a: 1 }, new Uint8Array([1]), ['a']];

describe('hot-path frame checks agree with the schemas', () => {
  for (const [name, good, decode, schema] of [
    ['result', goodResult, decodeWorkerFrame, resultFrame],
    ['invoke', goodInvoke, decodeControlFrame, invokeFrame],
  ] as const) {
    it(`${name}: accepts exactly what its zod schema accepts (thousands of mutations)`, () => {
      expect(decode(packr.pack(good()) as Uint8Array)).toMatchObject({ t: name });
      const rng = createRng(11);
      for (let i = 0; i < 3000; i++) {
        const f = good();
        const keys = Object.keys(f).filter((k) => k !== 't');
        for (let m = 0; m < 1 + rng.int(2); m++) {
          const k = keys[rng.int(keys.length)] as string;
          const v = WEIRD[rng.int(WEIRD.length)];
          if (v === undefined) delete f[k];
          else f[k] = v;
        }
        if (rng.next() < 0.1) f['extra'] = 1;
        const bytes = packr.pack(f) as Uint8Array;
        const zodOk = schema.safeParse(packr.unpack(bytes)).success;
        let ok = true;
        try {
          decode(bytes);
        } catch {
          ok = false;
        }
        expect(ok, JSON.stringify(f, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes(${v.length})` : v))).toBe(zodOk);
      }
    });
  }
});
