import { describe, expect, it } from 'vitest';
import { formatBytes, StatusLine, type StatusSink } from './status-line.js';

function sink(isTTY: boolean, columns?: number): StatusSink & { text: string } {
  const s = { isTTY, columns, text: '', write: (t: string) => (s.text += t) };
  return s;
}

describe('StatusLine', () => {
  it('writes nothing when the sink is not a terminal, so piped output is unchanged', () => {
    const s = sink(false);
    const line = new StatusLine(s);
    line.show('packing hello');
    line.clear();
    expect(line.enabled).toBe(false);
    expect(s.text).toBe('');
  });

  it('rewrites one line in place on a terminal and clears it once', () => {
    const s = sink(true, 80);
    const line = new StatusLine(s);
    line.show('packing hello');
    line.show('uploading hello');
    line.clear();
    line.clear();
    expect(s.text).toBe('\r\x1b[2Kpacking hello\r\x1b[2Kuploading hello\r\x1b[2K');
  });

  it('does not clear a line it never showed', () => {
    const s = sink(true, 80);
    new StatusLine(s).clear();
    expect(s.text).toBe('');
  });

  it('cuts a long line to the terminal width, and takes an unknown width as 80', () => {
    const narrow = sink(true, 20);
    new StatusLine(narrow).show('x'.repeat(50));
    expect(narrow.text).toBe(`\r\x1b[2K${'x'.repeat(18)}…`);
    const unknown = sink(true, 0);
    new StatusLine(unknown).show('y'.repeat(100));
    expect(unknown.text).toBe(`\r\x1b[2K${'y'.repeat(78)}…`);
  });
});

describe('formatBytes', () => {
  it('uses B, KiB and MiB', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 * 1024 + 100)).toBe('3.0 MiB');
  });
});
