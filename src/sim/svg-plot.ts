/** A small dependency-free SVG line chart for experiment results. */
export interface Series {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

const COLORS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#666666'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function lineChart(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; logY?: boolean; marks?: { x: number; label: string }[] }): string {
  const W = 720;
  const H = 400;
  const L = 70;
  const R = 170;
  const T = 40;
  const B = 50;
  const pts = opts.series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0));
  const xs = pts.map(([x]) => x);
  const ys = pts.map(([, y]) => y);
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, 1);
  const fy = (y: number): number => (opts.logY === true ? Math.log10(y) : y);
  const y0 = opts.logY === true ? Math.floor(Math.min(...ys.map(fy), 0)) : 0;
  const y1 = Math.max(...ys.map(fy), y0 + 1) * (opts.logY === true ? 1 : 1.05);
  const sx = (x: number): number => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (y: number): number => H - B - ((fy(y) - y0) / (y1 - y0 || 1)) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`);
  for (let i = 0; i <= 5; i++) {
    const x = x0 + ((x1 - x0) * i) / 5;
    out.push(`<text x="${sx(x)}" y="${H - B + 16}" text-anchor="middle">${+x.toFixed(2)}</text>`);
    const yv = y0 + ((y1 - y0) * i) / 5;
    const label = opts.logY === true ? `${+(10 ** yv).toPrecision(2)}` : `${+yv.toPrecision(3)}`;
    out.push(`<text x="${L - 6}" y="${H - B - ((H - T - B) * i) / 5 + 4}" text-anchor="end">${label}</text>`);
    out.push(`<line x1="${L}" y1="${H - B - ((H - T - B) * i) / 5}" x2="${W - R}" y2="${H - B - ((H - T - B) * i) / 5}" stroke="#eee"/>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}${opts.logY === true ? ' (log)' : ''}</text>`);
  for (const m of opts.marks ?? []) out.push(`<line x1="${sx(m.x)}" y1="${T}" x2="${sx(m.x)}" y2="${H - B}" stroke="#999" stroke-dasharray="4 3"/><text x="${sx(m.x) + 3}" y="${T + 12}" fill="#666">${esc(m.label)}</text>`);
  opts.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const p = s.points.filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0));
    if (p.length > 0) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6"${s.dashed === true ? ' stroke-dasharray="5 3"' : ''} points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    }
    out.push(`<line x1="${W - R + 12}" y1="${T + 14 + i * 18}" x2="${W - R + 32}" y2="${T + 14 + i * 18}" stroke="${color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="5 3"' : ''}/><text x="${W - R + 38}" y="${T + 18 + i * 18}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
