/** Where a status line goes: process.stderr, or a stand-in in tests. */
export interface StatusSink {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

const CLEAR = '\r\x1b[2K';

/**
 * One line of progress on a terminal, rewritten in place and cleared before
 * results are printed. When the sink is not a terminal (a pipe, a file, a
 * test), it writes nothing, so redirected output stays exactly what it was.
 */
export class StatusLine {
  private shown = false;

  constructor(private readonly sink: StatusSink = process.stderr) {}

  get enabled(): boolean {
    return this.sink.isTTY === true;
  }

  show(text: string): void {
    if (!this.enabled) return;
    // a terminal that does not report its width (columns 0 or unset) is taken as 80 wide
    const width = Math.max(10, (this.sink.columns || 80) - 1);
    const line = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    this.sink.write(`${CLEAR}${line}`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.sink.write(CLEAR);
    this.shown = false;
  }
}

/** 512 B, 12.3 KiB, 4.5 MiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
