/**
 * What the browser tests share: building dist-web/ and starting Debian's chromium through
 * playwright-core (`npm test` installs chromium when it is missing; KILN_SKIP_BROWSER=1 skips).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// @ts-expect-error: a plain .mjs script without type declarations
import { CHROMIUM, CHROMIUM_ARGS, defaultWebgpuAdapter, webgpuLaunch } from '../../scripts/chromium.mjs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** True when KILN_SKIP_BROWSER=1 asks to skip the Chromium tests (it says so once). */
export const skipBrowser = process.env.KILN_SKIP_BROWSER === '1';
if (skipBrowser) console.warn('browser test skipped: KILN_SKIP_BROWSER=1');

/** Builds the browser bundle (scripts/build-web.mjs); throws with its output if that fails. */
export function buildWeb(): void {
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`build-web failed:\n${built.stdout}${built.stderr}`);
}

/**
 * The CPU implementation of WebGPU the tests' Chromium uses (scripts/chromium.mjs `webgpuLaunch`):
 * 'lavapipe' (Mesa's llvmpipe, as the native GPU suite) when it is installed, else 'swiftshader';
 * KILN_WEBGPU_ADAPTER=swiftshader|lavapipe chooses.
 */
export const WEBGPU_ADAPTER: 'lavapipe' | 'swiftshader' = defaultWebgpuAdapter();

/**
 * A headless chromium with the flags that work here as root (playwright gives it a fresh profile),
 * plus `extraArgs`; with `webgpu`, WebGPU on that CPU adapter (flags and environment).
 */
export async function launchChromium(extraArgs: string[] = [], options: { webgpu?: 'lavapipe' | 'swiftshader' } = {}): Promise<any> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: \`npm test\` installs Debian's chromium (or: apt-get install chromium; KILN_CHROMIUM=<path> for another)`);
  }
  const { chromium } = await import('playwright-core');
  const gpu = options.webgpu === undefined ? { args: [], env: {}, dropArgs: [] } : webgpuLaunch(options.webgpu);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS.filter((a: string) => !gpu.dropArgs.includes(a)), ...gpu.args, ...extraArgs],
    env: { ...process.env, ...gpu.env },
  });
}

/** A test page served two ways, and a Chromium to open it in (pageOnTwoServers). */
export interface TwoServers {
  browser: any;
  /** Base URL of the server without COOP/COEP: Kiln runs single-threaded there. */
  plainUrl: string;
  /** Base URL of the cross-origin isolated server: threads allowed. */
  isolatedUrl: string;
  /** Closes Chromium and both servers, and removes the page. */
  close(): Promise<void>;
}

/**
 * Builds dist-web/, writes `html` to a temporary directory served at `/work/page/` by two servers
 * of the repository (scripts/serve-web.mjs), one cross-origin isolated and one not, and launches
 * Chromium. The page imports the bundle as '/dist-web/kiln.js'.
 */
export async function pageOnTwoServers(html: string): Promise<TwoServers> {
  buildWeb();
  const work = mkdtempSync(join(tmpdir(), 'kiln-web-page-'));
  mkdirSync(join(work, 'page'));
  writeFileSync(join(work, 'page', 'index.html'), html);
  // @ts-expect-error: a plain .mjs script without type declarations
  const { serve } = await import('../../scripts/serve-web.mjs');
  const plain = await serve({ port: 0, isolated: false, mounts: { '/work/': work } });
  const isolated = await serve({ port: 0, isolated: true, mounts: { '/work/': work } });
  const browser = await launchChromium();
  return {
    browser,
    plainUrl: plain.url,
    isolatedUrl: isolated.url,
    async close() {
      await browser.close();
      for (const s of [plain.server, isolated.server]) await new Promise((r) => s.close(r));
      rmSync(work, { recursive: true, force: true });
    },
  };
}
