// A Vulkan driver for the GPU tests: no GPU is lent to this project, so the suite runs the 'gpu'
// backend on lavapipe, Mesa's CPU implementation of Vulkan (Debian's mesa-vulkan-drivers, plus
// the loader libvulkan1). A machine with a real GPU driver already has an ICD file and is left alone.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { has, run, step } from './lib.mjs';

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
const LOADER = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib/libvulkan.so.1'];

function hasDriver() {
  const icd = ICD_DIRS.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
  return icd && LOADER.some((p) => existsSync(p));
}

/** The lavapipe ICD file (lvp_icd.<arch>.json), or null when Mesa's lavapipe is not installed. */
export function lavapipeIcd() {
  for (const d of ICD_DIRS) {
    if (!existsSync(d)) continue;
    const f = readdirSync(d).find((f) => /^lvp_icd\..*\.json$/.test(f));
    if (f !== undefined) return join(d, f);
  }
  return null;
}

/** Installs lavapipe with apt-get when no Vulkan driver is present (Linux with apt only). */
export function ensureVulkanDriver() {
  if (process.platform !== 'linux' || hasDriver()) return;
  if (!has('apt-get')) {
    step('no Vulkan driver found and no apt-get: the GPU tests will be skipped (install your GPU vendor\'s Vulkan driver, or Mesa\'s lavapipe)');
    return;
  }
  step('no Vulkan driver found: installing Mesa\'s lavapipe (apt-get install -y mesa-vulkan-drivers libvulkan1) for the GPU tests; once');
  const root = process.getuid?.() === 0;
  const apt = (args) => (root ? run('apt-get', args) : run('sudo', ['apt-get', ...args]));
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', 'mesa-vulkan-drivers', 'libvulkan1']);
}

/**
 * Mesa prints "error: XDG_RUNTIME_DIR is invalid or not set" each time a Vulkan instance is made
 * on a machine without a desktop session (CI, servers). Harmless, but it reads like a failure in
 * test logs: child processes get a private runtime directory instead.
 */
export function quietVulkanEnv() {
  if (process.env.XDG_RUNTIME_DIR && existsSync(process.env.XDG_RUNTIME_DIR)) return {};
  const dir = join(tmpdir(), `kiln-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { XDG_RUNTIME_DIR: dir };
}
