// Kiln's WASM backend vs tfjs-backend-wasm (XNNPACK), both on one thread, on issue 18's conv2d
// and pooling rows: the two run alternately, 8 rounds (ROUNDS) of 0.25 s each, and each keeps its
// best CPU time (user + system) per call, so that other processes sharing the machine move the
// ratio as little as possible. `node bench/wasm-ab.mjs [conv2d-b,pool]` (after `npm run bench`
// once, which installs the peers, or `node scripts/setup.mjs` and `npm ci` in bench/).
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-wasm');
await tf.setBackend('wasm'); await tf.ready();
const kiln = await import('../dist/index.js');
kiln.setBackend('wasm');
const rounds = Number(process.env.ROUNDS ?? 8);
function cpuPerCall(fn, ms = 250) { const s = process.cpuUsage(); const t0 = performance.now(); let n = 0; while (performance.now() - t0 < ms) { fn(); n++; } const u = process.cpuUsage(s); return (u.user + u.system) / 1e6 / n; }
const cases = [
  { id: 'conv2d-a', work: 2 * 32 * 28 * 28 * 32 * 9 / 1e9, unit: 'GFLOP/s', k: () => { const x = kiln.randn([32, 1, 28, 28]), w = kiln.randn([32, 1, 3, 3]); return () => kiln.conv2d(x, w, { padding: 'same' }).dispose(); }, t: () => { const x = tf.randomNormal([32, 28, 28, 1]), w = tf.randomNormal([3, 3, 1, 32]); return () => tf.conv2d(x, w, 1, 'same').dispose(); } },
  { id: 'conv2d-b', work: 2 * 8 * 32 * 32 * 64 * 64 * 9 / 1e9, unit: 'GFLOP/s', k: () => { const x = kiln.randn([8, 64, 32, 32]), w = kiln.randn([64, 64, 3, 3]); return () => kiln.conv2d(x, w, { padding: 'same' }).dispose(); }, t: () => { const x = tf.randomNormal([8, 32, 32, 64]), w = tf.randomNormal([3, 3, 64, 64]); return () => tf.conv2d(x, w, 1, 'same').dispose(); } },
  { id: 'pool-max-2', work: 8 * 64 * 32 * 32 / 1e9, unit: 'Gvalues/s', k: () => { const x = kiln.randn([8, 64, 32, 32]); return () => kiln.maxPool2d(x, 2).dispose(); }, t: () => { const x = tf.randomNormal([8, 32, 32, 64]); return () => tf.maxPool(x, 2, 2, 'valid').dispose(); } },
  { id: 'pool-avg-2', work: 8 * 64 * 32 * 32 / 1e9, unit: 'Gvalues/s', k: () => { const x = kiln.randn([8, 64, 32, 32]); return () => kiln.avgPool2d(x, 2).dispose(); }, t: () => { const x = tf.randomNormal([8, 32, 32, 64]); return () => tf.avgPool(x, 2, 2, 'valid').dispose(); } },
  { id: 'pool-max-3s2', work: 8 * 64 * 33 * 33 / 1e9, unit: 'Gvalues/s', k: () => { const x = kiln.randn([8, 64, 33, 33]); return () => kiln.maxPool2d(x, 3, { stride: 2 }).dispose(); }, t: () => { const x = tf.randomNormal([8, 33, 33, 64]); return () => tf.maxPool(x, 3, 2, 'valid').dispose(); } },
];
const only = process.argv[2]?.split(',');
for (const c of cases) {
  if (only && !only.some((o) => c.id.includes(o))) continue;
  const [kf, tfn] = [c.k(), c.t()];
  kf(); tfn();
  let [bk, bt] = [Infinity, Infinity];
  for (let r = 0; r < rounds; r++) { bk = Math.min(bk, cpuPerCall(kf)); bt = Math.min(bt, cpuPerCall(tfn)); }
  console.log(`${c.id.padEnd(14)} kiln-wasm ${(c.work / bk).toFixed(2).padStart(7)}  tfjs-wasm ${(c.work / bt).toFixed(2).padStart(7)} ${c.unit}  ratio ${(bt / bk).toFixed(2)}x`);
}
