/**
 * What the browser tests share: building dist-web/ and starting Debian's chromium through
 * playwright-core (`npm test` installs chromium when it is missing; KILN_SKIP_BROWSER=1 skips).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// @ts-expect-error: a plain .mjs script without type declarations
import { CHROMIUM, CHROMIUM_ARGS } from '../../scripts/chromium.mjs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** True when KILN_SKIP_BROWSER=1 asks to skip the Chromium tests (it says so once). */
export const skipBrowser = process.env.KILN_SKIP_BROWSER === '1';
if (skipBrowser) console.warn('browser test skipped: KILN_SKIP_BROWSER=1');

/** Builds the browser bundle (scripts/build-web.mjs); throws with its output if that fails. */
export function buildWeb(): void {
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`build-web failed:\n${built.stdout}${built.stderr}`);
}

/** Chromium's WebGPU on a localhost page here: SwiftShader, a CPU implementation (docs/browser.md). */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];

/**
 * A headless chromium with the flags that work here as root (playwright gives it a fresh profile),
 * plus `extraArgs` (WEBGPU_ARGS for the WebGPU tests).
 */
export async function launchChromium(extraArgs: string[] = []): Promise<any> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: \`npm test\` installs Debian's chromium (or: apt-get install chromium; KILN_CHROMIUM=<path> for another)`);
  }
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}
