// Instructions per call of the hot small ops through the native addon, for callgrind:
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out node bench/callgrind-hot-ops.mjs add 100000
// Run it with N calls and with 0 calls; (Ir(N) - Ir(0)) / N is the cost of one call (the addon's
// entry, the op and the dispose), without Node's start-up. Needs `node scripts/setup.mjs` first.
import { loadNative } from '../dist/backends/native.js';

const [op = 'add', countText = '100000'] = process.argv.slice(2);
const calls = Number(countText);
const backend = loadNative();
const codes = Object.fromEntries(backend.opTable().binary.map((name, i) => [name, i]));
const tensor = (n, shape) => backend.fromF32(Float32Array.from({ length: n }, (_, i) => (i % 7) - 3), shape);
const [a, b] = op === 'add' ? [tensor(4, [4]), tensor(4, [4])] : [tensor(64 * 64, [64, 64]), tensor(64 * 64, [64, 64])];
const call = op === 'add' ? () => backend.binary(codes.add, a, b) : () => backend.matmul(a, b, false, false);
for (let i = 0; i < calls; i++) backend.dispose(call());
console.log(`${op}: ${calls} calls`);
