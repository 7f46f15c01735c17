/**
 * ts/ has no import circles (docs/architecture.md, "TypeScript"): modules load in one order, a
 * bundler can split them, and a layer never reaches back up. The graph is built by
 * scripts/import-cycles.mjs from the TypeScript parser; a fixture with known circles shows the
 * finder finds them, so the check on ts/ cannot pass by finding nothing.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs script without type declarations
import { importCycles } from '../../scripts/import-cycles.mjs';

type Cycles = { modules: number; runtime: string[][]; all: string[][] };
const cyclesIn = importCycles as (dir?: string) => Cycles;

describe('import cycles', () => {
  it('finds runtime and type-only circles in a fixture', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cycles-'));
    mkdirSync(join(dir, 'ops'));
    const files: Record<string, string> = {
      // a <-> ops/b at run time (through a re-export), c -> a without a circle
      'a.ts': "import { b } from './ops/b.js';\nexport const a = () => b;\n",
      'ops/b.ts': "export { a as b } from '../a.js';\n",
      'c.ts': "import { a } from './a.js';\nexport const c = a;\n",
      // d <-> e only through types; f -> f through a dynamic import
      'd.ts': "import type { E } from './e.js';\nexport type D = E[];\n",
      'e.ts': "import { type D } from './d.js';\nexport type E = D | number;\n",
      'f.ts': "export const load = () => import('./f.js');\n",
    };
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const found = cyclesIn(dir);
    const names = (cs: string[][]) => cs.map((c) => c.map((f) => f.split(`${basename(dir)}/`)[1]).join(' ')).sort();
    expect(found.modules).toBe(6);
    expect(names(found.runtime)).toEqual(['a.ts ops/b.ts', 'f.ts']);
    expect(names(found.all)).toEqual(['a.ts ops/b.ts', 'd.ts e.ts', 'f.ts']);
  });

  // Parsing all of ts/ takes a few seconds; both checks read one result.
  let kiln: Cycles;
  beforeAll(() => {
    kiln = cyclesIn();
  });

  it('ts/ has no runtime import circle', () => {
    const found = kiln;
    expect(found.modules).toBeGreaterThan(100);
    expect(found.runtime).toEqual([]);
  });

  it("ts/ has no type-only circle beyond engine.ts <-> tensor.ts", () => {
    // engine.ts names Tensor in its public types (TensorContainer, tidy, keep) while tensor.ts
    // calls the engine's lifetime hooks; `import type` vanishes from the JavaScript, so this one
    // does not affect loading. Any other circle, of types or values, fails here.
    expect(kiln.all).toEqual([['ts/engine.ts', 'ts/tensor.ts']]);
  });
});
