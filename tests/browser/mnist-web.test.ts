/**
 * The browser demo in a real browser: Debian's chromium (through playwright-core) loads
 * examples/web/ from scripts/serve-web.mjs, a digit is drawn with the mouse, and the page's
 * prediction (WASM backend, dist-web/kiln.js) must match the native backend's on the same 784 inputs.
 * Skipped when chromium, playwright-core or the trained model (`npm start`) is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const MODEL = join(ROOT, 'out', 'mnist', 'model');

async function optional(name: string): Promise<any> {
  try {
    return await import(name);
  } catch {
    return null;
  }
}
const playwright = await optional('playwright-core');
const missing = [
  !existsSync(CHROMIUM) && `${CHROMIUM}`,
  playwright === null && 'playwright-core',
  !existsSync(join(MODEL, 'model.safetensors')) && 'out/mnist/model (run `npm start`)',
  !existsSync(join(ROOT, 'bindings', 'wasm', 'pkg-web', 'kiln_wasm.js')) && 'bindings/wasm/pkg-web (run `node scripts/build-wasm.mjs`)',
].filter(Boolean);
if (missing.length > 0) console.warn(`browser test skipped: missing ${missing.join(', ')}`);

interface DemoResult {
  input: number[];
  probs: number[];
  label: number;
  ms: number;
}

describe.skipIf(missing.length > 0)('examples/web in chromium', () => {
  let browser: any;
  let server: any;
  let url = '';

  beforeAll(async () => {
    const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], { encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`build-web failed:\n${built.stdout}${built.stderr}`);
    // @ts-expect-error: a plain .mjs script without type declarations
    const { serve } = await import('../../scripts/serve-web.mjs');
    ({ server, url } = await serve({ port: 0 }));
    // playwright gives each launch a fresh temporary profile (it refuses --user-data-dir here).
    browser = await playwright.chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r) ?? r(undefined));
  });

  it('predicts a drawn "1" like the native backend', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    await page.goto(`${url}examples/web/`);
    await page.waitForFunction(() => (window as any).kilnDemo?.ready === true || (window as any).kilnDemo?.error, null, { timeout: 30_000 });
    expect(await page.evaluate(() => (window as any).kilnDemo.error ?? null)).toBeNull();
    expect(errors).toEqual([]);

    // Draw a vertical stroke with the mouse, as a user would.
    const box = await page.locator('#pad').boundingBox();
    const x = box.x + box.width / 2;
    await page.mouse.move(x, box.y + 50);
    await page.mouse.down();
    for (let y = 50; y <= 230; y += 10) await page.mouse.move(x + (y - 50) * 0.05, box.y + y);
    await page.mouse.up();
    await page.waitForFunction(() => (window as any).kilnDemo.last !== null, null, { timeout: 10_000 });
    const web: DemoResult = await page.evaluate(() => (window as any).kilnDemo.predict());
    const shown = await page.locator('#prediction').textContent();
    expect(shown).toBe(String(web.label));
    expect(web.input).toHaveLength(784);
    expect(web.input.some((v) => v > 0.5)).toBe(true);

    // The same input on the native backend.
    const { stateDict, config } = kiln.loadModel(MODEL);
    const layers = (config as { layers: number[] }).layers;
    const modules: kiln.nn.Module[] = [];
    for (let i = 0; i + 1 < layers.length; i++) {
      if (i > 0) modules.push(new kiln.nn.ReLU());
      modules.push(new kiln.nn.Linear(layers[i]!, layers[i + 1]!));
    }
    const model = new kiln.nn.Sequential(...modules);
    model.loadStateDict(stateDict);
    const probs = Array.from(kiln.tidy(() => kiln.softmax(model.forward(kiln.tensor(web.input, [1, 784])), -1).dataSync()));
    const nativeLabel = probs.indexOf(Math.max(...probs));
    console.log(`browser: label ${web.label} in ${web.ms.toFixed(2)} ms; native: label ${nativeLabel}; p(1) web ${web.probs[1]!.toFixed(4)} native ${probs[1]!.toFixed(4)}`);
    expect(web.label).toBe(nativeLabel);
    for (let d = 0; d < 10; d++) expect(Math.abs(web.probs[d]! - probs[d]!)).toBeLessThan(1e-4);
    expect(web.label).toBe(1);
    await page.close();
  });
});
