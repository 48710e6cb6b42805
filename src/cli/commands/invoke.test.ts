import { describe, expect, it } from 'vitest';
import { parseHeaders } from './invoke.js';

describe('invoke -H', () => {
  it('reads "Name: value" into lower-case names, the value trimmed and free to contain colons', () => {
    expect(parseHeaders(['X-Trace: a:b:c', 'Content-Type:text/plain '])).toEqual({ 'x-trace': 'a:b:c', 'content-type': 'text/plain' });
    expect(parseHeaders([])).toEqual({});
  });

  it('refuses a header without a name', () => {
    expect(() => parseHeaders(['novalue'])).toThrow(/-H "novalue": expected "Name: value"/);
    expect(() => parseHeaders([': v'])).toThrow(/expected "Name: value"/);
  });
});
