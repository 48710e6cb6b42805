import { describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE_BYTES, truncateLine } from './line-splitter.js';

function split(chunks: (string | Uint8Array)[], maxBytes?: number, end = true): string[] {
  const out: string[] = [];
  const s = new LineSplitter((l) => out.push(l), maxBytes);
  for (const c of chunks) s.push(c);
  if (end) s.end();
  return out;
}

describe('LineSplitter', () => {
  it('splits on \\n and \\r\\n, joins lines written in pieces, keeps empty lines', () => {
    expect(split(['a\nb', 'c\r\n', '\nd'])).toEqual(['a', 'bc', '', 'd']);
    expect(split(['no newline'], undefined, false)).toEqual([]);
    expect(split(['no newline'])).toEqual(['no newline']);
    expect(split([''])).toEqual([]);
  });

  it('decodes UTF-8 split across chunks', () => {
    const bytes = Buffer.from('héllo €uro\n');
    const pieces = [bytes.subarray(0, 2), bytes.subarray(2, 8), bytes.subarray(8)];
    expect(split(pieces)).toEqual(['héllo €uro']);
  });

  it('cuts a long line with a marker and drops its tail up to the next newline', () => {
    const out = split(['x'.repeat(100), 'y'.repeat(100), 'z\nnext\n'], 64);
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^x{64} … \[baton: line cut at 64 bytes\]$/);
    expect(out[1]).toBe('next');
  });

  it('holds no more than about the limit for a line that never ends', () => {
    const s = new LineSplitter(() => undefined, 64);
    for (let i = 0; i < 1000; i++) s.push('0123456789');
    expect(s.pending).toBeLessThanOrEqual(64);
  });

  it('rejects a silly limit', () => {
    expect(() => new LineSplitter(() => undefined, 3)).toThrow(RangeError);
  });
});

describe('truncateLine', () => {
  it('leaves lines within the limit alone and never splits a character', () => {
    expect(truncateLine('short')).toBe('short');
    expect(truncateLine('x'.repeat(MAX_LINE_BYTES))).toBe('x'.repeat(MAX_LINE_BYTES));
    const euros = '€'.repeat(30); // 90 bytes
    const cut = truncateLine(euros, 64);
    expect(cut.startsWith('€'.repeat(21) + ' …')).toBe(true);
    expect(Buffer.byteLength(cut.split(' …')[0] ?? '')).toBeLessThanOrEqual(64);
  });
});
