/** Learning curves written to an HTML file (Node only; plot.ts makes the page). */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { History } from './fit.js';
import { learningCurvesHtml } from './plot.js';

/** Writes the learning curves to `path` (an .html file the user can open). */
export function saveLearningCurves(path: string, history: History, title?: string, notes?: string[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, learningCurvesHtml(history, title, notes));
}
