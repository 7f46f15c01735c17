// PyTorch (CPU, 2 threads) as a peer: bench/peers/pytorch_bench.py in the Python environment of
// ~/.cache/kiln/torch-venv (scripts/bench.mjs makes it; never used by npm test), one server
// process for the whole run, so `import torch` (seconds) is paid once. Every workload gets the same
// inputs and weights as the other peers (written to a temporary file) and is checked the same way:
// small cases and first-step losses against the float64 references in peers/*.mjs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { REPEATS, STEP_RUNS, TARGET } from '../timing.mjs';
import { attentionSetup, CHECK_ROWS, referenceAttention } from './attention.mjs';
import { checkCnnFirstLoss, cnnSetup } from './cnn.mjs';
import { assertClose, conv2dCheckCase, randomNormal, referenceMatmul } from './common.mjs';
import { checkLstmFirstLoss, lstmSetup } from './lstm.mjs';
import { checkFirstLoss, mlpSetup } from './mlp.mjs';
import { largeBatch, resnetInput, transformerInput } from './large.mjs';

export const TORCH_VENV = process.env.KILN_TORCH_VENV ?? join(homedir(), '.cache', 'kiln', 'torch-venv');
const PYTHON = join(TORCH_VENV, 'bin', 'python');
const SCRIPT = fileURLToPath(new URL('./pytorch_bench.py', import.meta.url));
const THREADS = '2';
const TIMING = { target: TARGET, repeats: REPEATS, slowRepeats: 2, stepRuns: STEP_RUNS, slowStepRuns: 3 };

let server = null; // { child, lines: async iterator of stdout lines, stderr: string[] }
let dir = null; // temporary directory of the request files

/** Starts the Python server (once). */
function start() {
  const child = spawn(PYTHON, ['-u', SCRIPT], {
    env: { ...process.env, OMP_NUM_THREADS: THREADS, MKL_NUM_THREADS: THREADS, CUDA_VISIBLE_DEVICES: '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr = [];
  child.stderr.on('data', (d) => stderr.push(String(d)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  child.on('error', (e) => stderr.push(e.message));
  server = { child, lines, stderr };
  dir = mkdtempSync(join(tmpdir(), 'kiln-bench-torch-'));
}

/**
 * Sends one request; `arrays` ({ name: Float32Array | Int32Array }) go through a file. Resolves to
 * the reply, or throws its error.
 */
async function request(kind, params = {}, arrays = {}) {
  const layout = {};
  const parts = [];
  let offset = 0;
  for (const [name, a] of Object.entries(arrays)) {
    const bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    layout[name] = [offset, a.length, a instanceof Int32Array ? 'i32' : 'f32'];
    parts.push(bytes);
    offset += bytes.length;
  }
  const data = join(dir, 'request.bin');
  writeFileSync(data, Buffer.concat(parts));
  server.child.stdin.write(`${JSON.stringify({ kind, params, data, arrays: layout, timing: TIMING })}\n`);
  const { value, done } = await server.lines.next();
  if (done) throw new Error(`the PyTorch process ended: ${server.stderr.join('').trim().split('\n').pop() || 'no message'}`);
  const reply = JSON.parse(value);
  if (reply.error) throw new Error(reply.error);
  return reply;
}

/** A training step's reply: checks the first-step loss with `check(what, loss, params)`, returns { runs }. */
async function trainStep(kind, params, arrays, check) {
  const reply = await request(kind, params, arrays);
  check(`pytorch ${kind} check`, reply.firstLoss, params);
  return { runs: reply.runs };
}

export default {
  id: 'pytorch',
  column: 'pytorch',
  async init() {
    if (!existsSync(PYTHON)) throw new Error(`no PyTorch environment at ${TORCH_VENV} (npm run bench makes it)`);
    start();
    const i = await request('info');
    this.info = i;
    return `PyTorch ${i.torch} (CPU, ${i.cpu}), ${i.threads} threads, python ${i.python} in ${TORCH_VENV}, one server process (pytorch_bench.py)`;
  },
  /** The Python process's peak resident set (VmHWM, kilobytes): child.mjs reports it for this peer. */
  async peakRSS() {
    return (await request('peakRSS')).kilobytes;
  },
  workloads: {
    async matmul({ n }) {
      const [ca, cb] = [randomNormal(35, 3), randomNormal(21, 4)];
      const reply = await request('matmul', { n }, { ca, cb });
      assertClose('pytorch matmul check', reply.check, referenceMatmul(ca, cb, 5, 7, 3));
      return reply.seconds;
    },
    async conv2d(params) {
      const { batch, channels, size, filters, kernel } = params;
      const check = conv2dCheckCase();
      const x = randomNormal(batch * channels * size * size, 7);
      const w = randomNormal(filters * channels * kernel * kernel, 8);
      const reply = await request('conv2d', { ...params, check: check.dims }, { cx: check.x, cw: check.w, x, w });
      assertClose('pytorch conv2d check', reply.check, check.want);
      return reply.seconds;
    },
    async selfAttention(params) {
      const d = attentionSetup(params);
      const reply = await request('selfAttention', { ...params, checkRows: CHECK_ROWS }, { x: d.x, wq: d.wq, wk: d.wk, wv: d.wv, wo: d.wo });
      assertClose('pytorch self-attention check', reply.check, referenceAttention(params, CHECK_ROWS), 1e-3);
      return reply.seconds;
    },
    mlpTrain(params) {
      const d = mlpSetup(params);
      return trainStep('mlpTrain', params, { x: d.x, labels: d.labels, w1: d.w1, b1: d.b1, w2: d.w2, b2: d.b2 }, checkFirstLoss);
    },
    cnnTrain(params) {
      const d = cnnSetup(params);
      const { x, labels, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b } = d;
      return trainStep('cnnTrain', params, { x, labels, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b }, checkCnnFirstLoss);
    },
    lstmTrain(params) {
      const { x, labels, wIh, wHh, bias, wOut, bOut } = lstmSetup(params);
      return trainStep('lstmTrain', params, { x, labels, wIh, wHh, bias, wOut, bOut }, checkLstmFirstLoss);
    },
    // training at larger scale (peers/large.mjs): the same batch, PyTorch's own init, checked in Python
    async resnet18Train(params) {
      return { runs: (await request('resnet18Train', params, largeBatch(resnetInput(params), params.classes))).runs };
    },
    async transformerTrain(params) {
      return { runs: (await request('transformerTrain', params, largeBatch(transformerInput(params), params.classes))).runs };
    },
  },
  close() {
    server?.child.stdin.end();
    server?.child.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  },
};
