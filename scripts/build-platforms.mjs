// `npm run build:platforms`: builds the native addon for every target this machine can build
// (docs/packaging.md has the table) into npm/<platform>/, then runs what it built:
//   - kiln-core's unit tests, cross-compiled for each target (with the addon's RUSTFLAGS, so
//     they reuse its std and crates) and run under qemu-user (aarch64) or through the musl
//     root's loader (x86-64 musl, with that root's libgcc_s: scripts/musl-root.mjs);
//   - each addon checked for the N-API entry point Node looks up (napi_register_module_v1);
//   - kiln-ml itself on the target's Node, which must pick the target's binary, run native and
//     agree with this machine's result: linux-arm64-gnu on the official arm64 Node (npm registry)
//     under qemu; linux-x64-musl on a Node built on Alpine, chrooted into a musl-only root
//     (scripts/musl-root.mjs; needs root).
// Slow (each target compiles wgpu and std from source; tens of minutes on 2 busy cores), so it is
// not part of `npm test`. `--target T` builds one; `--no-test` skips kiln-core's tests;
// `--no-build` checks binaries built earlier.
//
// Needs: Debian's rustc-web, cargo-web, rust-web-src (the std sources), gcc-aarch64-linux-gnu,
// musl-tools and qemu-user-static (apt), installed here when missing.
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CARGO_TARGET_DIR, ROOT, run, step } from './lib.mjs';
import { CROSS_TARGETS, HOST_TRIPLE, addonPath, buildAddon, crossBuildEnv, napiRustflags } from './build-addon.mjs';
import { muslTestRunner, runInMuslRoot } from './musl-root.mjs';

const APT = ['rustc-web', 'cargo-web', 'rust-web-src', 'qemu-user-static', ...new Set(Object.values(CROSS_TARGETS).map((t) => t.apt))];
const i = process.argv.indexOf('--target');
const targets = i > 0 ? [process.argv[i + 1]] : Object.keys(CROSS_TARGETS);
const test = !process.argv.includes('--no-test');
const build = !process.argv.includes('--no-build');

function ensureApt() {
  const missing = APT.filter((p) => spawnSync('dpkg', ['-s', p], { stdio: 'ignore' }).status !== 0);
  if (missing.length === 0) return;
  step(`installing ${missing.join(', ')} (apt)`);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  run(sudo[0] ?? 'apt-get', [...(sudo.length ? ['apt-get'] : []), '-o', 'DPkg::Lock::Timeout=900', 'install', '-y', ...missing]);
}

/** Cargo's environment variable naming a target's test runner: CARGO_TARGET_<TRIPLE>_RUNNER. */
const runnerVar = (triple) => `CARGO_TARGET_${triple.toUpperCase().replace(/-/g, '_')}_RUNNER`;

/**
 * The small job each foreign build must run: kiln-ml from the checkout at `root` (through its own
 * loader, so the checkout's npm/<platform>/ binary), printing which platform the loader saw, which
 * binary it loaded, the backend and one result to compare with this machine's.
 */
function smokeJob(root) {
  return [
    `const kiln = await import('${root}/dist/index.js');`,
    `const { currentPlatform, loadNativeBinary } = await import('${root}/dist/backends/native-binary.js');`,
    'const loaded = loadNativeBinary();',
    'const a = kiln.randn([64, 64], { seed: 3 });',
    'const y = kiln.tidy(() => a.matmul(a.transpose()).relu().sum());',
    'console.log(JSON.stringify({ ...currentPlatform(), binary: loaded.ok ? loaded.where : loaded.attempts, backend: kiln.getBackend(), simd: kiln.simdLevel(), value: y.dataSync()[0] }));',
  ].join('\n');
}

/** Parses the job's last line of output; a failed run throws with everything it printed. */
function smokeResult(r, where) {
  if (r.status !== 0) throw new Error(`build-platforms: the smoke job failed ${where}:\n${r.stdout}${r.stderr}${r.error ?? ''}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** The job on this machine's Node, for the foreign runs to agree with. */
const hostSmoke = () => smokeResult(spawnSync(process.execPath, ['--input-type=module', '-e', smokeJob(ROOT)], { encoding: 'utf8' }), 'on this machine');

/** The foreign run must load `tag`'s binary, run native and agree with this machine's value. */
function checkSmoke(tag, target, host, where) {
  const agree = Math.abs(target.value - host.value) <= 1e-5 * Math.abs(host.value);
  const binaryOk = typeof target.binary === 'string' && target.binary.endsWith(`kiln.${tag}.node`);
  if (target.backend !== 'native' || !binaryOk || !agree) {
    throw new Error(`build-platforms: ${where} ${JSON.stringify(target)}, on this machine ${JSON.stringify(host)}`);
  }
  return `${where}: ${JSON.stringify(target)} (this machine: ${host.value})`;
}

/**
 * linux-arm64-gnu: the official arm64 Node under qemu. It comes from the npm registry (`npm pack`),
 * cached in ~/.cache/kiln/node.
 */
function smokeUnderQemu(triple) {
  const { node: spec, runner, tag } = CROSS_TARGETS[triple];
  const dir = join(homedir(), '.cache', 'kiln', 'node', spec.replace('@', '-'));
  const node = join(dir, 'package', 'bin', 'node');
  if (!existsSync(node)) {
    step(`fetching ${spec} from the npm registry (Node for ${triple})`);
    mkdirSync(dir, { recursive: true });
    run('npm', ['pack', spec, '--pack-destination', dir, '--silent']);
    run('tar', ['-xzf', join(dir, `${spec.replace('@', '-')}.tgz`), '-C', dir, 'package/bin/node']);
  }
  step(`${triple}: kiln-ml on ${spec} under ${runner.split(' ')[0]}`);
  const [qemu, ...qemuArgs] = runner.split(' ');
  const target = smokeResult(spawnSync(qemu, [...qemuArgs, node, '--input-type=module', '-e', smokeJob(ROOT)], { encoding: 'utf8' }), 'under qemu');
  return checkSmoke(tag, target, hostSmoke(), `loaded by Node ${spec.split('@')[1]} under qemu`);
}

/**
 * linux-x64-musl: Node built on Alpine, in a root with musl's loader and no glibc
 * (scripts/musl-root.mjs), the checkout mounted at /kiln. The loader must see musl and pick the
 * musl binary.
 */
function smokeInMuslRoot(triple) {
  const { tag } = CROSS_TARGETS[triple];
  step(`${triple}: kiln-ml on Alpine's Node in a musl-only root (chroot)`);
  const target = smokeResult(runInMuslRoot(ROOT, ['--input-type=module', '-e', smokeJob('/kiln')]), 'in the musl root');
  if (target.libc !== 'musl') throw new Error(`build-platforms: the loader saw ${JSON.stringify(target)} in the musl root, not musl`);
  return checkSmoke(tag, target, hostSmoke(), 'loaded by Node for musl in a musl-only root');
}

/** How each cross target's build is run for real (kiln-core's tests aside). */
const SMOKE = { 'aarch64-unknown-linux-gnu': smokeUnderQemu, 'x86_64-unknown-linux-musl': smokeInMuslRoot };

ensureApt();
const results = [];
for (const triple of targets) {
  const { tag } = CROSS_TARGETS[triple] ?? {};
  // aarch64 under qemu-user; musl through the musl root's loader (its libgcc_s is on the path).
  const runner = CROSS_TARGETS[triple]?.runner ?? (triple.includes('musl') ? muslTestRunner() : null);
  if (!tag) throw new Error(`build-platforms: ${triple} is not a cross target here (${Object.keys(CROSS_TARGETS).join(', ')}); ${HOST_TRIPLE} is built by npm run build`);
  if (build) {
    step(`${triple}: napi build (-Zbuild-std; cache in ${CARGO_TARGET_DIR})`);
    buildAddon({ triple });
  }
  const symbols = spawnSync('readelf', ['--dyn-syms', '--wide', addonPath(tag)], { encoding: 'utf8' }).stdout ?? '';
  if (!symbols.includes('napi_register_module_v1')) throw new Error(`build-platforms: ${addonPath(tag)} does not export napi_register_module_v1`);
  results.push(`${tag}: built ${addonPath(tag)} (exports napi_register_module_v1)`);
  if (test) {
    const { env, cargoArgs } = crossBuildEnv(triple);
    step(`${triple}: kiln-core's tests${runner ? ` under ${runner.split(' ')[0]}` : ''}`);
    // --lib --tests: the doctests would need Debian's rustdoc to match its rustc, and add nothing
    // platform-specific.
    run(env.CARGO, ['test', '--release', '-p', 'kiln-core', '--lib', '--tests', '--target', triple, ...cargoArgs], {
      env: { ...env, RUSTFLAGS: napiRustflags(triple), ...(runner ? { [runnerVar(triple)]: runner } : {}) },
    });
    results.push(`${tag}: kiln-core tests passed${runner ? ` under ${runner.split(' ')[0]}` : ''}`);
  }
  if (SMOKE[triple]) results.push(`${tag}: ${SMOKE[triple](triple)}`);
}
step('build:platforms done');
for (const r of results) console.log(`  ${r}`);
if (!existsSync(addonPath())) console.log('  (this machine\'s own addon: npm run build)');
