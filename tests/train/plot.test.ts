/**
 * Learning curves: a self-contained HTML page with inline SVG charts, one polyline per series
 * with one point per epoch, names escaped; saveLearningCurves writes it to disk.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { train } from '../../ts/index.js';
import type { History } from '../../ts/train/index.js';
import { forEachBackend } from '../backends.js';

const history: History = {
  stoppedEarly: false,
  epochs: [
    { loss: 0.9, accuracy: 0.5, valLoss: 1.0, valAccuracy: 0.45, lr: 0.1 },
    { loss: 0.6, accuracy: 0.7, valLoss: 0.8, valAccuracy: 0.6, lr: 0.1 },
    { loss: 0.4, accuracy: 0.85, valLoss: 0.7, valAccuracy: 0.7, lr: 0.05 },
    { loss: 0.3, accuracy: 0.9, valLoss: 0.72, valAccuracy: 0.72, lr: 0.05 },
  ],
};

function polylines(html: string): string[][] {
  return [...html.matchAll(/<polyline[^>]*points="([^"]*)"/g)].map((m) => m[1].trim().split(/\s+/));
}

forEachBackend(() => {
  it('learningCurvesHtml: an HTML page with <svg> charts and one polyline per series, one point per epoch', () => {
    const html = train.learningCurvesHtml(history, 'XOR run', ['lr halved at epoch 3']);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('</html>');
    expect(html).toMatch(/<svg[^>]*>/);
    // loss chart (loss, valLoss), metrics chart (accuracy, valAccuracy), lr chart (lr)
    expect(html.match(/<svg/g)).toHaveLength(3);
    const lines = polylines(html);
    expect(lines).toHaveLength(5);
    for (const points of lines) {
      expect(points).toHaveLength(4);
      for (const p of points) expect(p).toMatch(/^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
    }
    for (const name of ['loss', 'valLoss', 'accuracy', 'valAccuracy', 'lr']) expect(html).toContain(`>${name}</text>`);
    expect(html).toContain('<title>XOR run</title>');
    expect(html).toContain('lr halved at epoch 3');
    // no scripts or external resources
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('learningCurvesHtml: the y axis points up (a smaller value is drawn lower)', () => {
    const html = train.learningCurvesHtml({ stoppedEarly: false, epochs: [{ loss: 2 }, { loss: 1 }] });
    const [points] = polylines(html);
    const ys = points.map((p) => Number(p.split(',')[1]));
    expect(ys[1], 'SVG y grows downwards: the smaller loss has the larger y').toBeGreaterThan(ys[0]);
  });

  it('learningCurvesHtml: a single epoch, a constant series, and names needing escapes', () => {
    const html = train.learningCurvesHtml({ stoppedEarly: false, epochs: [{ loss: 1, 'a<b>&"c"': 0.5 }] }, '<Run & "1">');
    expect(polylines(html)).toHaveLength(2);
    expect(html).toContain('&lt;Run &amp; &quot;1&quot;&gt;');
    expect(html).toContain('a&lt;b&gt;&amp;&quot;c&quot;');
    expect(html).not.toContain('<b>');
    expect(html).not.toMatch(/NaN|Infinity/);
  });

  it('saveLearningCurves writes the page, creating directories', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-plot-'));
    try {
      const path = join(dir, 'a', 'b', 'curves.html');
      train.saveLearningCurves(path, history, 'saved');
      expect(readFileSync(path, 'utf8')).toBe(train.learningCurvesHtml(history, 'saved'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
