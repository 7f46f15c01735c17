// `npm run check:install`: follows the README's "Install" section literally, as a user would.
// It packs kiln-ml and this machine's platform package (`npm pack`, which runs `prepack`), checks
// what the tarballs hold, installs both into an empty project, and runs every file the section
// shows: app.mjs and app.cjs (their output must equal the comment on their console.log line),
// app.ts under `strict` (plus its `require` twin), src/main.js built by Vite and the plain page,
// both loaded in Chromium. Then it breaks the installed binary (corrupt, missing, and other
// platforms' builds when `npm run build:platforms` made them) and checks that `import` still
// works on the WASM backend with exactly one warning that says why.
//
//   node scripts/check-install.mjs               # all of it (`npm run check:install`)
//   node scripts/check-install.mjs --no-browser  # no Vite, no Chromium, no prepack (npm test's form:
//                                                # it packs what npm test's set-up built)
//   node scripts/check-install.mjs --no-prepack  # the browser half too, on what is built (no 45-minute
//                                                # portable addon; the checks of prepack's output are left out)
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, step } from './lib.mjs';
import { HOST_TAG, addonPath } from './build-addon.mjs';
import { platformDependencies } from './platform-manifest.mjs';
import { GLIBC_FLOOR, compareVersions, glibcRequirements } from './glibc-floor.mjs';

const browser = !process.argv.includes('--no-browser');
const prepack = browser && !process.argv.includes('--no-prepack');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const platformPkg = `${pkg.name}-${HOST_TAG}`;
let failures = 0;

function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail ? `\n${detail}` : ''}`);
  if (!ok) failures++;
}

/** Runs a command, returning its exit status and output (never exits). */
function sh(cmd, args, cwd, env = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Like sh, but a failure ends the check (later steps depend on it). */
function must(cmd, args, cwd, env) {
  const r = sh(cmd, args, cwd, env);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}) in ${cwd}:\n${r.stdout}${r.stderr}`);
  return r;
}

/** The README's Install section: every fenced block whose first line names a file (`// app.mjs`, `<!-- index.html -->`). */
export function installSnippets(readme) {
  const start = readme.indexOf('\n## Install\n');
  if (start < 0) throw new Error('README.md has no "## Install" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const files = {};
  for (const [, body] of section.matchAll(/```[a-z]*\n([\s\S]*?)```/g)) {
    const name = body.match(/^(?:\/\/|<!--)\s*([\w./-]+\.(?:mjs|cjs|ts|js|html))\b/)?.[1];
    if (name) files[name] = body;
  }
  return files;
}

/** What a snippet says it prints: the comment after its last console.log (or textContent) line. */
const expectedOutput = (source, marker) => source.split('\n').filter((l) => l.includes(marker)).pop()?.match(/\/\/ (.*)$/)?.[1].trim();

/** The entries of a tarball (`tar -tzf`), without npm's `package/` prefix. */
const tarList = (tgz) => must('tar', ['-tzf', tgz], ROOT).stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));

const work = mkdtempSync(join(tmpdir(), 'kiln-install-'));
try {
  // 1. Pack. The full check runs prepack (it builds everything the package ships); npm test's form
  // packs what its set-up already built (and the browser bundle, which is quick).
  step(`npm pack ${pkg.name}${prepack ? ' (runs prepack)' : ' --ignore-scripts'} and ${platformPkg}`);
  if (!prepack) must(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], ROOT);
  const packArgs = ['pack', '--pack-destination', work, ...(prepack ? [] : ['--ignore-scripts'])];
  const mainTgz = join(work, must('npm', packArgs, ROOT).stdout.trim().split('\n').pop());
  const platformTgz = join(work, must('npm', ['pack', '--pack-destination', work, join(ROOT, 'npm', HOST_TAG)], ROOT).stdout.trim().split('\n').pop());

  // 2. What the tarballs hold.
  const files = tarList(mainTgz);
  const threadsFiles = ['bindings/wasm/pkg-web/kiln_wasm_threads.js', 'bindings/wasm/pkg-web/package.json', 'dist/backends/wasm-node-worker.js', 'dist-web/kiln-worker.js', 'dist-web/kiln_wasm_threads_bg.wasm'];
  for (const f of ['package.json', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/browser.d.ts', 'dist-web/kiln.js', 'dist-web/kiln_wasm_bg.wasm', ...threadsFiles]) {
    check(files.includes(f), `${pkg.name} tarball has ${f}`);
  }
  check(!files.some((f) => f.endsWith('.node')), `${pkg.name} tarball carries no native binary (the platform packages do)`);
  // The single-threaded modules ship twice on purpose: once for Node's CommonJS glue, which can make
  // a fresh instance after a WASM fault, and once in the browser bundle (docs/packaging.md). The
  // threaded one ships once: Node's threaded loader reads dist-web's.
  const wasmFiles = files.filter((f) => f.endsWith('.wasm'));
  const expectedWasm = ['bindings/wasm/pkg-node/kiln_wasm_bg.wasm', 'bindings/wasm/pkg-node/kiln_wasm_relaxed_bg.wasm', 'dist-web/kiln_wasm_bg.wasm', 'dist-web/kiln_wasm_gpu_bg.wasm', 'dist-web/kiln_wasm_relaxed_bg.wasm', 'dist-web/kiln_wasm_threads_bg.wasm'];
  check(JSON.stringify([...wasmFiles].sort()) === JSON.stringify(expectedWasm), `the .wasm files are the Node and browser builds, nothing more (${wasmFiles.join(', ')})`);
  check(!files.some((f) => /^dist\/.*\.map$/.test(f) || f.startsWith('ts/')), 'no source maps under dist/ and no sources');
  if (prepack) {
    // prepack compiled dist/ without maps; a leftover sourceMappingURL would point at nothing.
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    must('tar', ['-xzf', mainTgz, '-C', unpacked], ROOT);
    const dangling = files.filter((f) => /^dist\/.*\.c?js$/.test(f) && readFileSync(join(unpacked, 'package', f), 'utf8').includes('sourceMappingURL'));
    check(dangling.length === 0, 'no source map comments under dist/ (prepack compiled without maps)', dangling.join(', '));
    const shipped = JSON.parse(readFileSync(join(unpacked, 'package', 'package.json'), 'utf8'));
    const wantDeps = JSON.stringify(platformDependencies());
    check(JSON.stringify(shipped.optionalDependencies) === wantDeps, `the packed package.json lists every platform package: ${wantDeps}`, JSON.stringify(shipped.optionalDependencies));
    check(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).optionalDependencies === undefined, 'postpack restored package.json');
  }
  for (const tgz of [mainTgz, platformTgz]) console.log(`     ${tgz.split('/').pop()}: ${(statSync(tgz).size / 1e6).toFixed(2)} MB`);
  const platformFiles = tarList(platformTgz);
  check(platformFiles.sort().join() === ['README.md', 'package.json', `kiln.${HOST_TAG}.node`].sort().join(), `${platformPkg} tarball: ${platformFiles.join(', ')}`);
  if (process.platform === 'linux') {
    const sections = must('readelf', ['-S', '--wide', addonPath()], ROOT).stdout;
    check(!sections.includes('.symtab'), `${platformPkg}'s binary is stripped (no .symtab)`);
  }
  if (HOST_TAG.endsWith('-gnu')) checkGlibcFloor();

  // 3. An empty project that installs both tarballs (the README's `npm install kiln-ml`: the
  // platform package is an optional dependency that the registry would supply).
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'kiln-install-check', private: true }, null, 2));
  step(`installing the tarballs, typescript and @types/node into ${app}`);
  must('npm', ['install', '--no-audit', '--no-fund', mainTgz, platformTgz], app);
  must('npm', ['install', '--no-audit', '--no-fund', '--save-dev', 'typescript@5', '@types/node@20'], app);

  const snippets = installSnippets(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  for (const need of ['app.mjs', 'app.cjs', 'threads.mjs', 'app.ts', 'src/main.js', 'index.html']) check(need in snippets, `README's Install section shows ${need}`);
  for (const [name, body] of Object.entries(snippets)) {
    const to = name === 'index.html' ? join(app, 'page', name) : join(app, name);
    mkdirSync(dirname(to), { recursive: true });
    writeFileSync(to, body);
  }

  // 4. Node: ES module, CommonJS and the threaded WASM build print what the README says they print.
  const runNode = (file) => sh(process.execPath, [file], app);
  for (const file of ['app.mjs', 'app.cjs', 'threads.mjs']) {
    const r = runNode(file);
    const want = expectedOutput(snippets[file], 'console.log');
    check(r.status === 0 && r.stdout.trim() === want && r.stderr.trim() === '', `node ${file} prints "${want}"`, `got: ${r.stdout}${r.stderr}`);
  }

  // 5. TypeScript, strict, both module systems, the shipped declarations checked too (no skipLibCheck).
  writeFileSync(
    join(app, 'app-require.cts'),
    "import kiln = require('kiln-ml');\n\nconst t: kiln.Tensor = kiln.tensor([1, 2, 3]);\nconst n: number = t.sum().dataSync()[0];\nconsole.log(n);\n",
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['app.ts', 'app-require.cts'] }, null, 2),
  );
  const tsc = sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app);
  check(tsc.status === 0, 'tsc --strict: app.ts (import) and app-require.cts (require) type-check against the shipped types', tsc.stdout + tsc.stderr);

  // 6. Browsers: the Vite build and the plain page, in Chromium.
  if (browser) await checkBrowsers(app, snippets);

  // 6b. Alpine: the same project on a musl-only system picks kiln-ml-linux-x64-musl (when
  // `npm run build:platforms` built it; needs root for the chroot).
  if (prepack && HOST_TAG === 'linux-x64-gnu' && existsSync(addonPath('linux-x64-musl'))) await checkMusl(app, snippets, work);

  // 7. The WASM fallback, with the installed binary broken three ways.
  const installed = join(app, 'node_modules', platformPkg, `kiln.${HOST_TAG}.node`);
  const fallback = (how, reason) => {
    for (const file of ['app.mjs', 'app.cjs']) {
      const r = runNode(file);
      const want = expectedOutput(snippets[file], 'console.log').replace(/^native/, 'wasm');
      const warnings = r.stderr.split('\n').filter((l) => l.includes('KILN_NO_NATIVE_BINARY'));
      const ok = r.status === 0 && r.stdout.trim() === want && warnings.length === 1 && reason.test(warnings[0]);
      check(ok, `${how}: node ${file} runs on WASM ("${want}") with one warning: ${warnings[0] ?? '(none)'}`, `got: ${r.stdout}${r.stderr}`);
    }
  };
  const damaged = readFileSync(installed);
  damaged.fill(0, 0, 64); // the ELF header gone, as in a damaged download
  writeFileSync(installed, damaged);
  fallback('corrupt binary', new RegExp(`${platformPkg}: .*invalid ELF header.*reinstall the dependencies`));
  // Other platforms' builds (npm run build:platforms) in this platform's slot: another
  // architecture (wrong ELF machine) or another C library: the musl build needs `libc.so` (musl's
  // soname), and glibc's loader finds Debian's libc.so, a linker script ("invalid ELF header").
  const others = Object.keys(platformDependencies()).map((p) => p.slice(pkg.name.length + 1)).filter((t) => t !== HOST_TAG && existsSync(addonPath(t)));
  for (const other of others) {
    copyFileSync(addonPath(other), installed);
    fallback(`${other} binary in ${platformPkg}`, new RegExp(`${platformPkg}: .*(wrong ELF class|ELF file's machine|machine type|cannot open shared object|symbol not found|undefined symbol|libc\\.so: invalid ELF header).*reinstall the dependencies`));
  }
  if (others.length === 0) console.log('(no other platform\'s build in npm/: `npm run build:platforms` adds wrong-architecture and wrong-libc cases)');
  rmSync(join(app, 'node_modules', platformPkg), { recursive: true });
  fallback('platform package not installed', new RegExp(`${platformPkg}: not installed\\).*npm install ${platformPkg}`));
} catch (e) {
  check(false, 'install check ran to the end', String(e?.stack ?? e));
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(failures === 0 ? 'install check: all passed' : `install check: ${failures} failed`);
process.exitCode = failures === 0 ? 0 : 1;

/**
 * The packed glibc binary must load on the glibc the docs promise (GLIBC_FLOOR): prepack links it
 * against napi-rs's glibc 2.17 sysroot. npm test's form packs the development build, linked
 * against this machine's glibc, so there the floor is only reported.
 */
function checkGlibcFloor() {
  const [highest] = glibcRequirements(addonPath());
  const needs = highest ? `glibc ${highest.version} (e.g. ${highest.symbol})` : 'no versioned glibc symbol';
  if (!prepack) {
    console.log(`     ${platformPkg}'s binary needs ${needs}: a development build; \`npm run check:install\` checks prepack's against glibc ${GLIBC_FLOOR}`);
    return;
  }
  check(highest !== undefined && compareVersions(highest.version, GLIBC_FLOOR) <= 0, `${platformPkg}'s binary needs glibc ${GLIBC_FLOOR} or older: it needs ${needs}`);
}

/**
 * Runs app.mjs in a musl-only root (scripts/musl-root.mjs: Alpine's Node, musl's loader, no glibc)
 * with the project mounted at /kiln. On Alpine npm would install kiln-ml-linux-x64-musl for the
 * `libc: musl` in its manifest; here (a glibc machine, where npm skips it) its tarball is unpacked
 * into node_modules beside the gnu one, and the loader must choose it by itself.
 */
async function checkMusl(app, snippets, work) {
  const { runInMuslRoot } = await import('./musl-root.mjs');
  const muslPkg = `${pkg.name}-linux-x64-musl`;
  step(`${muslPkg} on musl: app.mjs in a musl-only root`);
  const tgz = join(work, must('npm', ['pack', '--pack-destination', work, join(ROOT, 'npm', 'linux-x64-musl')], ROOT).stdout.trim().split('\n').pop());
  const dest = join(app, 'node_modules', muslPkg);
  mkdirSync(dest, { recursive: true });
  must('tar', ['-xzf', tgz, '-C', dest, '--strip-components=1'], ROOT);
  // "native" with no warning can only come from the musl binary: the gnu one needs libc.so.6,
  // which the root does not have.
  const r = runInMuslRoot(app, ['/kiln/app.mjs']);
  const want = expectedOutput(snippets['app.mjs'], 'console.log');
  check(r.status === 0 && r.stdout.trim() === want && r.stderr.trim() === '', `musl root: node app.mjs prints "${want}" (native, from ${muslPkg})`, `got: ${r.stdout}${r.stderr}${r.error ?? ''}`);
  rmSync(dest, { recursive: true });
}

/** Builds src/main.js with Vite and serves the plain page; both must show what their comment says. */
async function checkBrowsers(app, snippets) {
  const { CHROMIUM, CHROMIUM_ARGS, ensureChromium } = await import('./chromium.mjs');
  const { serve } = await import('./serve-web.mjs');
  ensureChromium();
  step('vite build of src/main.js');
  must('npm', ['install', '--no-audit', '--no-fund', '--save-dev', 'vite@7'], app);
  writeFileSync(join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/src/main.js"></script>\n');
  writeFileSync(join(app, 'vite.config.js'), "export default { build: { target: 'es2022' }, worker: { format: 'es' } };\n");
  must(join(app, 'node_modules', '.bin', 'vite'), ['build'], app);
  cpSync(join(app, 'node_modules', 'kiln-ml', 'dist-web'), join(app, 'page', 'kiln'), { recursive: true });

  const { chromium } = await import('playwright-core');
  const b = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    // The Vite build once more from a cross-origin isolated server: init() picks the threaded
    // build, whose worker and .wasm Vite must have emitted from the installed package.
    const threaded = (source) => source.replace(/\/\/ relaxed: /, '// threads: ');
    for (const [what, root, source, isolated] of [
      ['Vite build', join(app, 'dist'), snippets['src/main.js'], false],
      ['plain page', join(app, 'page'), snippets['index.html'], false],
      ['Vite build, cross-origin isolated', join(app, 'dist'), threaded(snippets['src/main.js']), true],
    ]) {
      const { server, url } = await serve({ port: 0, root, isolated });
      try {
        const page = await b.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        await page.goto(`${url}index.html`);
        const want = expectedOutput(source, 'textContent');
        await page.waitForFunction(() => document.body?.textContent?.includes(':'), null, { timeout: 60_000 }).catch(() => {});
        const text = (await page.evaluate(() => document.body?.textContent ?? '')).trim();
        check(text === want && errors.length === 0, `${what} in Chromium shows "${want}"`, `got "${text}" ${errors.join('; ')}`);
      } finally {
        await new Promise((r) => server.close(r));
      }
    }
  } finally {
    await b.close();
  }
}
