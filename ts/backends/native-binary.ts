/**
 * Finding the native addon, napi-rs style. The compiled addon is not part of the `kiln-ml` package
 * itself: each platform has its own package (`kiln-ml-linux-x64-gnu`, `kiln-ml-darwin-arm64`, ...)
 * listed in `optionalDependencies`, and npm installs only the one whose `os`, `cpu` and `libc`
 * match the machine. This module names the package for the running platform and loads its binary;
 * in a clone of the repository the binary built by `npm run build` (npm/<platform>/) comes first.
 *
 * The platform names are napi-rs's (`@napi-rs/cli`'s `create-npm-dirs` lays out npm/<platform>/).
 */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PACKAGE_NAME } from '../package-name.js';

/** The addon's file stem (package.json's `napi.binaryName`): `kiln.linux-x64-gnu.node`. */
const BINARY_NAME = 'kiln';

/** The platform tags Kiln publishes binaries for (package.json's `napi.targets`; docs/packaging.md). */
export const PUBLISHED_PLATFORMS = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc',
] as const;

export interface PlatformInfo {
  platform: string;
  arch: string;
  /** Linux only: 'gnu' for glibc, 'musl' for musl (Alpine); undefined elsewhere. */
  libc?: 'gnu' | 'musl';
}

/** Linux's C library: Node's own report names the glibc it runs on; without one it is musl. */
function detectLibc(): 'gnu' | 'musl' {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

/** The running process's platform. */
export function currentPlatform(): PlatformInfo {
  const info: PlatformInfo = { platform: process.platform, arch: process.arch };
  if (process.platform === 'linux') info.libc = detectLibc();
  return info;
}

/** napi-rs's tag for a platform: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformTag({ platform, arch, libc }: PlatformInfo): string {
  if (platform === 'linux') return `linux-${arch}-${libc ?? 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** One place the addon may be, and why it did not load if it did not. */
export interface BinaryAttempt {
  where: string;
  error: string;
}

export type NativeResult = { ok: true; addon: unknown; where: string } | { ok: false; tag: string; attempts: BinaryAttempt[] };

/**
 * Loads the addon for this platform: first a build in this checkout (npm/<tag>/kiln.<tag>.node,
 * written by `npm run build`; absent from the published package), then the platform package.
 * Never throws: a failure comes back with the reason for each place tried.
 */
export function loadNativeBinary(platform: PlatformInfo = currentPlatform()): NativeResult {
  const tag = platformTag(platform);
  const require = createRequire(import.meta.url);
  const attempts: BinaryAttempt[] = [];

  // Same relative path from ts/backends/ and dist/backends/ to the package root.
  const localBuild = fileURLToPath(new URL(`../../npm/${tag}/${BINARY_NAME}.${tag}.node`, import.meta.url));
  if (existsSync(localBuild)) {
    try {
      return { ok: true, addon: require(localBuild), where: localBuild };
    } catch (e) {
      attempts.push({ where: localBuild, error: firstLine(e) });
    }
  }

  const pkg = `${PACKAGE_NAME}-${tag}`;
  try {
    return { ok: true, addon: require(pkg), where: pkg };
  } catch (e) {
    const notInstalled = (e as { code?: string }).code === 'MODULE_NOT_FOUND' && String((e as Error).message).includes(`'${pkg}'`);
    attempts.push({ where: pkg, error: notInstalled ? 'not installed' : firstLine(e) });
  }
  return { ok: false, tag, attempts };
}

/** In a clone of the repository (not an installed package) the addon is built, not installed. */
const inCheckout = (): boolean => existsSync(fileURLToPath(new URL('../../Cargo.toml', import.meta.url)));

/** The advice for getting the native backend, given why it did not load. */
export function nativeAdvice(tag: string, attempts: BinaryAttempt[] = []): string {
  const pkg = `${PACKAGE_NAME}-${tag}`;
  if (inCheckout()) return 'build it: `npm run build` (needs Rust; docs/packaging.md)';
  if (!(PUBLISHED_PLATFORMS as readonly string[]).includes(tag)) {
    return `no prebuilt binary exists for ${tag}; build one from source (docs/packaging.md, "Targets")`;
  }
  if (attempts.some((a) => a.where === pkg && a.error !== 'not installed')) {
    // Installed but unloadable: node_modules copied from another machine, or a damaged file.
    return `reinstall the dependencies on this machine (\`rm -rf node_modules && npm install\`): the installed ${pkg} does not load here`;
  }
  return (
    `install ${pkg} (npm installs it with ${PACKAGE_NAME} unless optional dependencies are omitted: ` +
    `drop --omit=optional / --no-optional, or run \`npm install ${pkg}\`)`
  );
}

/** The one-paragraph explanation of a failed load: where Kiln looked, what went wrong, what to do. */
export function describeFailure(result: Extract<NativeResult, { ok: false }>): string {
  const tried = result.attempts.map((a) => `${a.where}: ${a.error}`).join('; ');
  return `no native binary loaded for ${result.tag} (${tried}). To get the native backend, ${nativeAdvice(result.tag, result.attempts)}.`;
}

/** An error's first line: dlopen messages name the file and the reason (wrong ELF class, missing GLIBC_x.y). */
function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
