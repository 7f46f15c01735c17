// The browser for the real-browser tests (tests/browser/) and `npm run bench:web`: Debian's
// chromium, driven by playwright-core (a devDependency) through executablePath. Browser
// downloads (`npx playwright install`) cannot work here, so the system package it is.
import { existsSync } from 'node:fs';
import { run, step } from './lib.mjs';
import { lavapipeIcd, quietVulkanEnv } from './vulkan.mjs';

export const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';

/** Launch flags that work here as root, headless, with nothing reaching out to the network. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * How to start Chromium for WebGPU on this machine's CPU, as { args, env } to add to a launch
 * (CHROMIUM_ARGS minus `--disable-gpu` for 'lavapipe'). Two adapters, both CPU implementations:
 *
 * - 'swiftshader': Chromium's own (`--enable-unsafe-webgpu --enable-features=Vulkan`; vendor
 *   'google', architecture 'swiftshader'). It runs a workgroup's threads as coroutines and switches
 *   all of them at every barrier: a reduction kernel costs 10-60 ms a call.
 * - 'lavapipe': Mesa's llvmpipe, the driver the native GPU suite runs on, reached the only way
 *   Chromium 156 allows with Debian 12's Mesa 22.3. Dawn's Vulkan backend refuses that lavapipe
 *   ("Vulkan shaderUniform*ArrayDynamicIndexing required": Mesa 22.3 lacks dynamic indexing of
 *   sampled-image arrays), so WebGPU goes through Dawn's OpenGL ES backend on ANGLE, and ANGLE on
 *   Vulkan on lavapipe: `--use-angle=vulkan` (with `--ignore-gpu-blocklist`, which lets a software
 *   GL driver accelerate) and `--use-webgpu-adapter=opengles`. That adapter exists only in WebGPU's
 *   compatibility mode, which `--force-webgpu-compat` gives every `requestAdapter()`: the page
 *   (and wgpu inside Kiln's GPU module) asks as usual and gets llvmpipe.
 *   `--enable-webgpu-developer-features` fills `adapter.info.description` (ANGLE (Mesa, Vulkan
 *   1.3.230 (llvmpipe ...))), which is how the page knows the adapter is software.
 *   VK_ICD_FILENAMES keeps the Vulkan loader to lavapipe (the Intel and Radeon ICDs of the same
 *   package find no hardware).
 */
export function webgpuLaunch(adapter) {
  if (adapter === 'swiftshader') return { args: ['--enable-unsafe-webgpu', '--enable-features=Vulkan'], env: {}, dropArgs: [] };
  if (adapter !== 'lavapipe') throw new Error(`webgpuLaunch: adapter must be 'swiftshader' or 'lavapipe', got ${JSON.stringify(adapter)}`);
  const icd = lavapipeIcd();
  if (icd === null) throw new Error("webgpuLaunch('lavapipe'): no lavapipe ICD (lvp_icd.*.json) under /usr/share/vulkan/icd.d: apt-get install mesa-vulkan-drivers libvulkan1");
  return {
    args: ['--enable-unsafe-webgpu', '--use-angle=vulkan', '--ignore-gpu-blocklist', '--use-webgpu-adapter=opengles', '--force-webgpu-compat', '--enable-webgpu-developer-features'],
    env: { VK_ICD_FILENAMES: icd, ...quietVulkanEnv() },
    dropArgs: ['--disable-gpu'],
  };
}

/**
 * The adapter the WebGPU tests and `npm run bench:web` use: KILN_WEBGPU_ADAPTER
 * ('lavapipe' | 'swiftshader'), else lavapipe when its ICD is installed, else SwiftShader.
 */
export function defaultWebgpuAdapter() {
  const asked = process.env.KILN_WEBGPU_ADAPTER;
  if (asked !== undefined && asked !== '') return asked;
  return lavapipeIcd() === null ? 'swiftshader' : 'lavapipe';
}

/** Installs Debian's chromium with apt-get when it is missing (as root, or through sudo). */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  step(`${CHROMIUM} is missing: installing Debian's chromium for the browser tests (apt-get update, apt-get install -y chromium; a few minutes, once)`);
  const root = process.getuid?.() === 0;
  const apt = (args) => (root ? run('apt-get', args) : run('sudo', ['apt-get', ...args]));
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', 'chromium']);
  if (!existsSync(CHROMIUM)) {
    console.error(`[kiln] chromium was installed but ${CHROMIUM} is still missing; set KILN_CHROMIUM to its path`);
    process.exit(1);
  }
}
