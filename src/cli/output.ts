/** Print rows as an aligned table (humans) or JSON (`-o json`). */
export function printRows(rows: Record<string, unknown>[], columns: string[], format: string, raw?: unknown): void {
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(raw ?? rows, null, 2)}\n`);
    return;
  }
  if (format !== 'table') throw new Error(`unknown output format "${format}" (use table or json)`);
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => fmt(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const row of cells) process.stdout.write(`${line(row)}\n`);
}

function fmt(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
  return JSON.stringify(v);
}
