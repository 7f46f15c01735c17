/** Cora from disk (Node only): the LINQS release's two text files, parsed by cora.ts. */

import fs from 'node:fs';
import path from 'node:path';
import { parseCora, type Cora } from './cora.js';

/** Reads cora.content and cora.cites from `root` (a directory of the LINQS release). */
export function loadCora(root: string): Cora {
  const read = (name: string) => {
    const file = path.join(root, name);
    if (!fs.existsSync(file)) throw new Error(`loadCora: ${file} is missing; root must hold cora.content and cora.cites`);
    return fs.readFileSync(file, 'utf8');
  };
  return parseCora(read('cora.content'), read('cora.cites'));
}
