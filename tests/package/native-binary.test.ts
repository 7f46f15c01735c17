// Which platform package the loader asks for, and what it says when none loads. The fallback to
// WASM with a broken or missing binary in an installed copy is tests/package/install.test.ts.
import { describe, expect, it } from 'vitest';
import { currentPlatform, describeFailure, loadNativeBinary, platformTag, PUBLISHED_PLATFORMS } from '../../ts/backends/native-binary.js';
import { readdirSync, readFileSync } from 'node:fs';

describe('native binary selection', () => {
  it('names platforms as napi-rs does', () => {
    expect(platformTag({ platform: 'linux', arch: 'x64', libc: 'gnu' })).toBe('linux-x64-gnu');
    expect(platformTag({ platform: 'linux', arch: 'arm64', libc: 'musl' })).toBe('linux-arm64-musl');
    expect(platformTag({ platform: 'darwin', arch: 'arm64' })).toBe('darwin-arm64');
    expect(platformTag({ platform: 'win32', arch: 'x64' })).toBe('win32-x64-msvc');
  });

  it('has a platform package for each napi target, at kiln-ml\'s version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    // The repository lists no optionalDependencies (prepack adds them: scripts/platform-manifest.mjs).
    expect(pkg.optionalDependencies).toBeUndefined();
    expect(pkg.napi.targets).toHaveLength(PUBLISHED_PLATFORMS.length);
    expect(readdirSync(new URL('../../npm', import.meta.url)).sort()).toEqual([...PUBLISHED_PLATFORMS].sort());
    for (const tag of PUBLISHED_PLATFORMS) {
      const sub = JSON.parse(readFileSync(new URL(`../../npm/${tag}/package.json`, import.meta.url), 'utf8'));
      expect(sub).toMatchObject({ name: `${pkg.name}-${tag}`, version: pkg.version, main: `kiln.${tag}.node`, files: [`kiln.${tag}.node`] });
      expect(sub.os).toEqual([tag.split('-')[0]]);
    }
  });

  it('loads this machine\'s binary from the checkout', () => {
    const tag = platformTag(currentPlatform());
    const r = loadNativeBinary();
    expect(r.ok ? r.where : r).toMatch(new RegExp(`npm/${tag}/kiln\\.${tag}\\.node$`));
  });

  it('explains a platform without a binary: where it looked, and what to do', () => {
    const r = loadNativeBinary({ platform: 'linux', arch: 'riscv64', libc: 'gnu' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.attempts).toEqual([{ where: 'kiln-ml-linux-riscv64-gnu', error: 'not installed' }]);
    expect(describeFailure(r)).toMatch(/^no native binary loaded for linux-riscv64-gnu \(kiln-ml-linux-riscv64-gnu: not installed\)\. To get the native backend, build it: `npm run build`/);
  });
});
