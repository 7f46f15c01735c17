/**
 * Learning curves as a self-contained HTML page (inline SVG, no scripts, no network): one chart
 * for the losses and one for the other metrics, train and validation side by side. Writing it to
 * a file is plot-file.ts's job (Node only); in a page, show the string in an iframe or a Blob URL.
 */

import type { History } from './fit.js';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** One line chart: series name -> values per epoch; `epochs` labels the x axis. */
/**
 * A y-axis label: 3 significant digits, in exponent form for small or large magnitudes, so a
 * learning rate of 1e-5 reads "1.00e-5" rather than "0.0000100".
 */
function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-2 || a >= 1e5)) return v.toExponential(2);
  return v.toPrecision(3);
}

/** Pixels a label takes at font-size 12 in a sans-serif face (digits ~6.7 px; rounded up). */
const labelWidth = (text: string) => Math.ceil(text.length * 7);

function chart(title: string, series: Record<string, number[]>, epochNumbers: number[]): string {
  const all = Object.values(series).flat().filter(Number.isFinite);
  if (all.length === 0) return '';
  const epochs = Math.max(...Object.values(series).map((v) => v.length));
  let [lo, hi] = [Math.min(...all), Math.max(...all)];
  if (hi - lo < 1e-12) [lo, hi] = [lo - 0.5, hi + 0.5];
  const ticks = [0, 1, 2, 3, 4].map((t) => lo + ((hi - lo) * t) / 4);
  const labels = ticks.map(formatTick);
  // The plot starts right of the widest y label, so no label is cut at the SVG's left edge.
  const left = Math.max(60, 12 + Math.max(...labels.map(labelWidth)));
  const [w, h, right, top, bottom] = [500 + left, 320, 130, 30, 40];
  const x = (i: number) => left + (epochs <= 1 ? 0 : (i / (epochs - 1)) * (w - left - right));
  const y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="#333"/>`,
  ];
  ticks.forEach((v, t) => {
    parts.push(`<line x1="${left - 4}" y1="${y(v)}" x2="${w - right}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${labels[t]}</text>`);
  });
  const step = Math.max(1, Math.ceil(epochs / 10));
  for (let i = 0; i < epochs; i += step) parts.push(`<text x="${x(i)}" y="${h - bottom + 16}" text-anchor="middle">${epochNumbers[i] ?? i + 1}</text>`);
  parts.push(`<text x="${(left + w - right) / 2}" y="${h - 6}" text-anchor="middle">epoch</text>`);
  Object.entries(series).forEach(([name, values], k) => {
    const color = COLORS[k % COLORS.length];
    const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`);
    values.forEach((v, i) => parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${color}"><title>${escapeXml(name)} epoch ${epochNumbers[i] ?? i + 1}: ${v.toFixed(4)}</title></circle>`));
    parts.push(`<rect x="${w - right + 12}" y="${top + k * 20}" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${w - right + 30}" y="${top + k * 20 + 10}">${escapeXml(name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The learning curves of a `fit` history as an HTML page. */
export function learningCurvesHtml(history: History, title = 'Learning curves', notes: string[] = []): string {
  const keys = [...new Set(history.epochs.flatMap((e) => Object.keys(e)))];
  const pick = (filter: (k: string) => boolean) => Object.fromEntries(keys.filter(filter).map((k) => [k, history.epochs.map((e) => e[k])]));
  const losses = pick((k) => k.toLowerCase().endsWith('loss'));
  const metrics = pick((k) => !k.toLowerCase().endsWith('loss') && k !== 'lr' && k !== 'epoch');
  const lr = pick((k) => k === 'lr');
  const epochNumbers = history.epochs.map((e, i) => e.epoch ?? i + 1);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>body{font-family:sans-serif;margin:24px;color:#222} svg{margin:8px 16px 8px 0}</style></head>
<body><h1>${escapeXml(title)}</h1>
${notes.map((n) => `<p>${escapeXml(n)}</p>`).join('\n')}
<div>${chart('Loss', losses, epochNumbers)}${chart('Metrics', metrics, epochNumbers)}${chart('Learning rate', lr, epochNumbers)}</div>
</body></html>
`;
}
