/**
 * The code examples in README.md and docs/*.md run as written. Every ```js / ```ts block carries a
 * marker on the line before its fence:
 *
 *   <!-- runnable -->                    the block runs as it is (in a fresh Node process)
 *   <!-- runnable
 *   const x = kiln.randn([8, 784]);      ... after this hidden set-up, which defines what the
 *   -->                                  block takes from its surroundings (a model, data)
 *   <!-- not runnable: <why> -->         a fragment, or code for another platform (a page)
 *
 * A block without a marker fails the test, so a new example is checked or explicitly excused.
 * Blocks run with `import * as kiln from '<package name>'` prepended unless they import it
 * themselves; the package resolves to dist/ (Node's self-reference through package.json's
 * "exports"), rebuilt here when ts/ is newer, as scripts/setup.mjs does.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain .mjs scripts without type declarations
import { mtime, newest } from '../../scripts/lib.mjs';
// @ts-expect-error: plain .mjs scripts without type declarations
import { quietVulkanEnv } from '../../scripts/vulkan.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string }).name;

/**
 * Examples known to fail today, with the error they give: the test checks they still fail that
 * way, and fails once one runs, so the entry is removed when the fix lands.
 */
const KNOWN_FAILURES: Array<{ file: string; code: string; error: RegExp }> = [];

interface Example {
  file: string;
  where: string;
  setup: string | null;
  code: string;
  excuse: string | null;
}

/** The js/ts blocks of a Markdown file with the marker before each. */
function examples(file: string): Example[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(js|ts|javascript|typescript|mjs)\s*$/.test(lines[i]!)) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    const code = lines.slice(i + 1, end).join('\n');
    let setup: string | null = null;
    let excuse: string | null = null;
    const before = lines[i - 1] ?? '';
    const notRunnable = /^<!-- not runnable: (.+) -->$/.exec(before);
    if (notRunnable) excuse = notRunnable[1]!;
    else if (before === '<!-- runnable -->') setup = '';
    else if (before === '-->') {
      const start = lines.lastIndexOf('<!-- runnable', i - 1);
      if (start >= 0) setup = lines.slice(start + 1, i - 1).join('\n');
    }
    out.push({ file, where: `${file}:${i + 1}`, setup, code, excuse });
    i = end;
  }
  return out;
}

const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const all = files.flatMap(examples);

/** Runs an example in a fresh Node process; '' if it succeeded, else what it printed. */
function run(example: Example): string {
  const imports = new RegExp(`from '${PACKAGE}'`).test(example.code) ? '' : `import * as kiln from '${PACKAGE}';\n`;
  const script = `${imports}${example.setup}\n${example.code}\n`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, ...quietVulkanEnv() },
  });
  return r.status === 0 ? '' : `exit ${r.status ?? r.signal}\n${r.stderr.trim().split('\n').slice(0, 12).join('\n')}`;
}

describe('examples in README.md and docs/', () => {
  beforeAll(() => {
    if (mtime('dist/index.js') < newest(['ts', 'tsconfig.json'])) {
      const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}${r.stderr}`);
    }
  }, 300_000);

  it('marks every js/ts block runnable or says why not', () => {
    expect(all.length).toBeGreaterThan(10);
    expect(all.filter((e) => e.setup === null && e.excuse === null).map((e) => e.where)).toEqual([]);
  });

  for (const example of all.filter((e) => e.setup !== null)) {
    it(`${example.where} runs`, () => {
      const failure = run(example);
      const known = KNOWN_FAILURES.find((k) => k.file === example.file && example.code.includes(k.code));
      if (known) {
        expect(failure, `${example.where} runs now: remove it from KNOWN_FAILURES`).not.toBe('');
        expect(failure).toMatch(known.error);
      } else {
        expect(failure).toBe('');
      }
    }, 200_000);
  }
});
