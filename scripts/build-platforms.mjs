// `npm run build:platforms`: builds the native addon for every target this machine can build
// (docs/packaging.md has the table) into npm/<platform>/, then runs what it built:
//   - kiln-core's unit tests, cross-compiled for each target (with the addon's RUSTFLAGS, so
//     they reuse its std and crates) and run under qemu-user (aarch64) or directly (x86-64
//     musl, through the musl loader Debian's musl package installs);
//   - each addon checked for the N-API entry point Node looks up (napi_register_module_v1);
//   - linux-arm64-gnu: kiln-ml itself on the official arm64 Node (from the npm registry) under
//     qemu, which must pick the native backend and agree with this machine's result.
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
 * The same small job on this machine's Node and on the target's Node under qemu, each through
 * kiln-ml's own loader (the checkout's npm/<platform>/ binary): the target's must run native and
 * agree. The target's Node comes from the npm registry (`npm pack`), cached in ~/.cache/kiln/node.
 */
function smokeUnderQemu(triple) {
  const { node: spec, runner } = CROSS_TARGETS[triple];
  const dir = join(homedir(), '.cache', 'kiln', 'node', spec.replace('@', '-'));
  const node = join(dir, 'package', 'bin', 'node');
  if (!existsSync(node)) {
    step(`fetching ${spec} from the npm registry (Node for ${triple})`);
    mkdirSync(dir, { recursive: true });
    run('npm', ['pack', spec, '--pack-destination', dir, '--silent']);
    run('tar', ['-xzf', join(dir, `${spec.replace('@', '-')}.tgz`), '-C', dir, 'package/bin/node']);
  }
  const job = [
    "import * as kiln from 'kiln-ml';",
    'const a = kiln.randn([64, 64], { seed: 3 });',
    'const y = kiln.tidy(() => a.matmul(a.transpose()).relu().sum());',
    'console.log(JSON.stringify({ arch: process.arch, backend: kiln.getBackend(), simd: kiln.simdLevel(), value: y.dataSync()[0] }));',
  ].join('\n');
  const runJob = (cmd, args) => {
    const r = spawnSync(cmd, [...args, '--input-type=module', '-e', job], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build-platforms: the smoke job failed under ${cmd}:\n${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  };
  step(`${triple}: kiln-ml on ${spec} under ${runner.split(' ')[0]}`);
  const host = runJob(process.execPath, []);
  const [qemu, ...qemuArgs] = runner.split(' ');
  const target = runJob(qemu, [...qemuArgs, node]);
  const agree = Math.abs(target.value - host.value) <= 1e-5 * Math.abs(host.value);
  if (target.backend !== 'native' || !agree) {
    throw new Error(`build-platforms: under qemu ${JSON.stringify(target)}, on this machine ${JSON.stringify(host)}`);
  }
  return `loaded by Node ${spec.split('@')[1]} under qemu: ${JSON.stringify(target)} (this machine: ${host.value})`;
}

ensureApt();
const results = [];
for (const triple of targets) {
  const { tag, runner } = CROSS_TARGETS[triple] ?? {};
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
    step(`${triple}: kiln-core's tests${runner ? ` under ${runner.split(' ')[0]}` : ' (run directly, through the musl loader)'}`);
    // --lib --tests: the doctests would need Debian's rustdoc to match its rustc, and add nothing
    // platform-specific.
    run(env.CARGO, ['test', '--release', '-p', 'kiln-core', '--lib', '--tests', '--target', triple, ...cargoArgs], {
      env: { ...env, RUSTFLAGS: napiRustflags(triple), ...(runner ? { [runnerVar(triple)]: runner } : {}) },
    });
    results.push(`${tag}: kiln-core tests passed${runner ? ` under ${runner.split(' ')[0]}` : ''}`);
  }
  if (CROSS_TARGETS[triple].node) results.push(`${tag}: ${smokeUnderQemu(triple)}`);
}
step('build:platforms done');
for (const r of results) console.log(`  ${r}`);
if (!existsSync(addonPath())) console.log('  (this machine\'s own addon: npm run build)');
