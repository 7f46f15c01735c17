// Why `alternate` (onnx-timing.mjs) lets each turn settle for SETTLE_MS: times Kiln native and
// onnxruntime-node (2 threads each) on one ONNX model at batch 1, each (a) alone, back to back,
// (b) timed right after one run of the other and one untimed run of its own (the old alternation)
// and (c) after the other's run and SETTLE_MS of untimed runs of its own. Medians of `runs` timed
// runs per column, two rounds. A runtime whose idle threads spin after its run slows the other's
// (b) but not its (c).
//   node bench/onnx-settle.mjs [squeezenet|transformer-b1|resnet50] [runs]
// (models from `npm run bench:onnx`, in ~/.cache/kiln/onnx-bench)
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { benchInput, SETTLE_MS } from './onnx-timing.mjs';

const kiln = await import('../dist/index.js');
const ort = await import('onnxruntime-node');
const name = process.argv[2] ?? 'squeezenet';
const runs = Number(process.argv[3] ?? 30);
const path = join(homedir(), '.cache', 'kiln', 'onnx-bench', `${name}.onnx`);
const shape = name.startsWith('transformer') ? [1, 128, 256] : [1, 3, 224, 224];
const input = benchInput(shape);
const session = await ort.InferenceSession.create(readFileSync(path), { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, shape) };
const model = kiln.onnx.load(path);
const x = kiln.tensor(input, shape);
const peers = {
  kiln: async () => kiln.noGrad(() => kiln.tidy(() => model.forward(x).dataSync())),
  ort: async () => (await session.run(feeds))[session.outputNames[0]].data,
};
const timed = async (run) => {
  const t = performance.now();
  await run();
  return performance.now() - t;
};
const settle = async (run) => {
  const t = performance.now();
  do await run();
  while (performance.now() - t < SETTLE_MS);
};
const median = (ts) => [...ts].sort((a, b) => a - b)[ts.length >> 1].toFixed(2);

for (let i = 0; i < 20; i++) for (const run of Object.values(peers)) await run();
for (let round = 1; round <= 2; round++) {
  const cells = [];
  for (const [me, other] of [['kiln', 'ort'], ['ort', 'kiln']]) {
    const [alone, afterOne, afterSettle] = [[], [], []];
    for (let i = 0; i < runs; i++) alone.push(await timed(peers[me]));
    for (let i = 0; i < runs; i++) {
      await peers[other]();
      await peers[me]();
      afterOne.push(await timed(peers[me]));
    }
    for (let i = 0; i < runs; i++) {
      await peers[other]();
      await settle(peers[me]);
      afterSettle.push(await timed(peers[me]));
    }
    cells.push(`${me} alone ${median(alone)}, after ${other} + 1 untimed ${median(afterOne)}, after ${other} + ${SETTLE_MS} ms ${median(afterSettle)}`);
  }
  console.log(`${name} batch 1, round ${round}, median ms: ${cells.join(' | ')}`);
}
x.dispose();
model.dispose();
await session.release();
process.exit(0); // onnxruntime's threads could keep the process alive
