// Instructions per call of hot ops through the native addon, for callgrind:
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out node bench/callgrind-hot-ops.mjs add 100000
// Run it with N calls and with 0 calls; (Ir(N) - Ir(0)) / N is the cost of one call (the addon's
// entry, the op and the dispose), without Node's start-up. Needs `node scripts/setup.mjs` first.
// Ops: add (two float32 [4]), matmul (64x64 · 64x64), lstmStep (one LSTM layer's training step:
// forward over x [8, 16, 32] with hidden 64 and biases, then BPTT to every input), linearQ8
// (x [32, 256] · int8 W [256, 256]ᵀ + b).
import { loadNative } from '../dist/backends/native.js';

const [op = 'add', countText = '100000'] = process.argv.slice(2);
const calls = Number(countText);
const backend = loadNative();
const table = backend.opTable();
const tensor = (shape, scale = 1) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return backend.fromF32(Float32Array.from({ length: n }, (_, i) => ((i % 7) - 3) * scale), shape);
};

function binaryCall(name, shape) {
  const code = table.binary.indexOf('add');
  const [a, b] = [tensor(shape), tensor(shape)];
  return name === 'add' ? () => backend.dispose(backend.binary(code, a, b)) : () => backend.dispose(backend.matmul(a, b, false, false));
}

function lstmStepCall() {
  const [batch, steps, input, hidden] = [8, 16, 32, 64];
  const gh = 4 * hidden;
  const x = tensor([batch, steps, input], 0.1);
  const [h0, c0] = [tensor([batch, hidden], 0.05), tensor([batch, hidden], 0.05)];
  const params = [tensor([gh, input], 0.02), tensor([gh, hidden], 0.02), tensor([gh], 0.01), tensor([gh], 0.01)];
  for (const p of [x, ...params]) backend.setRequiresGrad(p, true);
  const seed = tensor([batch, steps + 2, hidden], 0.1);
  const lstm = table.recurrent.indexOf('lstm');
  return () => {
    const out = backend.recurrent(lstm, x, h0, c0, ...params, false);
    backend.backward(out, seed);
    backend.dispose(out);
    for (const p of [x, ...params]) backend.zeroGrad(p);
  };
}

function linearQ8Call() {
  const [rows, inFeatures, outFeatures] = [32, 256, 256];
  const [q, scales] = backend.quantizeInt8(tensor([outFeatures, inFeatures], 0.01));
  const [x, bias] = [tensor([rows, inFeatures], 0.1), tensor([outFeatures], 0.01)];
  return () => backend.dispose(backend.linearQ8(x, q, scales, bias));
}

const makers = { add: () => binaryCall('add', [4]), matmul: () => binaryCall('matmul', [64, 64]), lstmStep: lstmStepCall, linearQ8: linearQ8Call };
if (!makers[op]) throw new Error(`unknown op '${op}': one of ${Object.keys(makers).join(', ')}`);
const call = makers[op]();
for (let i = 0; i < calls; i++) call();
console.log(`${op}: ${calls} calls`);
