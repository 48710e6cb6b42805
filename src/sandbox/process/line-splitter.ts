/**
 * Splitting a sandbox's output into log lines. Pure: no I/O, no clock. Used
 * inside the node runner (so it is one of the scripts bound into the jail and
 * may import nothing but Node's own modules) and by the worker for the raw
 * stdout/stderr pipes of its sandboxes.
 */
import { StringDecoder } from 'node:string_decoder';

/** Longest log line kept, in UTF-8 bytes; the rest of a longer line is cut and replaced by a marker. */
export const MAX_LINE_BYTES = 8 * 1024;

const encoder = new TextEncoder();

function marker(maxBytes: number): string {
  return ` … [baton: line cut at ${maxBytes} bytes]`;
}

/**
 * `line` if it fits in `maxBytes` UTF-8 bytes, else its longest prefix that
 * does (never splitting a character) followed by a marker saying it was cut.
 */
export function truncateLine(line: string, maxBytes = MAX_LINE_BYTES): string {
  // every UTF-16 unit is at most 3 UTF-8 bytes: short lines need no counting
  if (line.length * 3 <= maxBytes) return line;
  const buf = new Uint8Array(maxBytes);
  const { read } = encoder.encodeInto(line, buf);
  return read >= line.length ? line : line.slice(0, read) + marker(maxBytes);
}

/**
 * Turns a stream of chunks (text or bytes, split anywhere, even inside a
 * UTF-8 character) into lines, without their `\n` or `\r\n`. A line that grows
 * past `maxBytes` is emitted at once, cut, and the rest of it up to the next
 * newline is dropped, so a writer that never ends its line cannot make the
 * splitter hold more than about `maxBytes`.
 */
export class LineSplitter {
  private partial = '';
  /** Inside the dropped tail of a line already emitted as cut. */
  private dropping = false;
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {
    if (!Number.isInteger(maxBytes) || maxBytes < 16) throw new RangeError(`maxBytes must be an integer of at least 16, got ${maxBytes}`);
  }

  /** Text held for a line not yet ended. */
  get pending(): number {
    return this.partial.length;
  }

  push(chunk: string | Uint8Array): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl === -1) break;
      this.complete(text.slice(start, nl));
      start = nl + 1;
    }
    if (start < text.length) this.hold(text.slice(start));
  }

  /** Emit what is held as a last line (the writer ended without a newline). */
  end(): void {
    const rest = this.decoder.end();
    if (rest !== '') this.hold(rest);
    if (this.partial !== '') this.complete('');
    this.dropping = false;
  }

  private complete(tail: string): void {
    if (this.dropping) {
      this.dropping = false;
      return;
    }
    let line = this.partial === '' ? tail : this.partial + tail;
    this.partial = '';
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.emit(truncateLine(line, this.maxBytes));
  }

  private hold(text: string): void {
    if (this.dropping) return;
    this.partial += text;
    // more UTF-16 units than bytes allowed: certainly too long, whatever the encoding
    if (this.partial.length > this.maxBytes) {
      const line = this.partial;
      this.partial = '';
      this.dropping = true;
      this.emit(truncateLine(line, this.maxBytes));
    }
  }
}
