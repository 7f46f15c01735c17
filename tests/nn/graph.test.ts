/**
 * Graph layers: nn.Graph's cached normalizations against dense matrices, GCNConv and SAGEConv
 * against the same layers written densely, gradient checks of every parameter, errors naming
 * the layer, and a learning test: on a planted-community graph with noisy features a 2-layer
 * GCN must beat an MLP on the features alone by a wide margin (a broken propagation, norm or
 * gradient leaves it at the MLP's level or below).
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, prng, randND, read, readOf, T } from '../helpers.js';
import { gradCheck } from './gradcheck.js';

/** Dense [n, n] matrix with M[d][s] = Σ weight over edges s -> d. */
function dense(src: ArrayLike<number>, dst: ArrayLike<number>, weight: ArrayLike<number> | null, n: number): number[][] {
  const m = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let e = 0; e < src.length; e++) m[dst[e]][src[e]] += weight === null ? 1 : weight[e];
  return m;
}

function matmulRows(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

async function rows(t: Tensor): Promise<number[][]> {
  const [n, f] = t.shape;
  const d = await read(t);
  return Array.from({ length: n }, (_, i) => d.slice(i * f, (i + 1) * f));
}

/** A layer bound to one graph, so the module gradient checker (single input) can drive it. */
class OnGraph extends nn.Module {
  constructor(readonly layer: nn.Module<[Tensor, nn.Graph]>, private readonly graph: nn.Graph) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.layer.forward(x, this.graph);
  }
}

// A small directed graph: a repeated edge (0 -> 1 twice), a self loop on 3, node 4 with no in-edges.
const SRC = [0, 0, 1, 2, 3, 3, 4, 1];
const DST = [1, 1, 2, 0, 3, 1, 2, 0];
const N = 5;

/** Planted communities: 3 classes of 60 nodes, dense inside a class, sparse across; features are the class one-hot buried in noise. */
function communities(seed: number) {
  const rand = prng(seed);
  const n = 180;
  const classes = 3;
  const label = Int32Array.from({ length: n }, (_, i) => i % classes);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (rand() < (label[i] === label[j] ? 0.1 : 0.005)) a.push(i), b.push(j);
    }
  }
  const f = 16;
  const x = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < f; k++) x[i * f + k] = 2 * (rand() + rand() + rand() - 1.5);
    x[i * f + label[i]] += 1;
  }
  // 4 labelled nodes per class; the rest are the test set.
  const train = Array.from({ length: 12 }, (_, i) => i);
  const test = Array.from({ length: n - 12 }, (_, i) => i + 12);
  return { graph: nn.Graph.undirected(a, b, n), x: kiln.tensor(x, [n, f]), label, train, test, f, classes };
}

async function accuracyOn(logits: () => Tensor, label: Int32Array, nodes: number[]): Promise<number> {
  const pred = await readOf(() => kiln.noGrad(() => logits().argmax(1)));
  return nodes.filter((i) => pred[i] === label[i]).length / nodes.length;
}

forEachBackend(() => {
  describe('nn.Graph', () => {
    it('undirected() adds both directions once; bad node indices are errors naming the graph', async () => {
      const g = nn.Graph.undirected([0, 1, 1, 2], [1, 0, 2, 2], 3);
      const dst = await read(g.dst);
      const pairs = (await read(g.src)).map((s, e) => `${s}->${dst[e]}`).sort();
      expect(pairs).toEqual(['0->1', '1->0', '1->2', '2->1', '2->2']);
      expect(Array.from(g.inDegree())).toEqual([1, 2, 2]);
      g.dispose();
      expectThrows(() => new nn.Graph([0, 5], [1, 1], 3), 'Graph', 'src[1] = 5', '[0, 3)');
      expectThrows(() => new nn.Graph([0, 1], [1, -1], 3), 'Graph', 'dst[1] = -1');
      expectThrows(() => new nn.Graph([0, 1], [1], 3), 'Graph', 'src has 2 entries but dst has 1');
      expectThrows(() => new nn.Graph([0.5], [1], 3), 'Graph', 'src[0] = 0.5');
    });

    it('gcnNorm is D^-1/2 (A + I) D^-1/2, adding self loops only where missing, and is cached', async () => {
      const g = new nn.Graph(SRC, DST, N);
      const norm = g.gcnNorm();
      expect(g.gcnNorm(), 'cached: the same tensors on the second call').toBe(norm);
      const got = dense(await read(norm.src), await read(norm.dst), await read(norm.weight), N);
      const a = dense(SRC, DST, null, N);
      for (let i = 0; i < N; i++) if (a[i][i] === 0) a[i][i] = 1; // node 3 already has its loop
      const deg = a.map((row) => row.reduce((s, v) => s + v, 0));
      const want = a.map((row, d) => row.map((v, s) => v / Math.sqrt(deg[d] * deg[s])));
      assertClose(got.flat(), want.flat(), { atol: 1e-6, rtol: 1e-5 }, 'normalized adjacency');
      g.dispose();
      expectThrows(() => g.gcnNorm(), 'Graph.gcnNorm', 'disposed');
    });

    it('aggregate: sum, mean and max over in-neighbours equal dense / loop references', async () => {
      const g = new nn.Graph(SRC, DST, N);
      const x = T(randND([N, 3], 1));
      const xr = await rows(x);
      const a = dense(SRC, DST, null, N);
      assertClose(await readOf(() => g.aggregate(x, 'sum')), matmulRows(a, xr).flat(), { atol: 1e-6 }, 'sum');
      const mean = a.map((row) => row.map((v) => v / Math.max(1, row.reduce((s, w) => s + w, 0))));
      assertClose(await readOf(() => g.aggregate(x, 'mean')), matmulRows(mean, xr).flat(), { atol: 1e-6 }, 'mean');
      const max = a.map((row) => xr[0].map((_, j) => (row.some((v) => v > 0) ? Math.max(...row.flatMap((v, s) => (v > 0 ? [xr[s][j]] : []))) : 0)));
      assertClose(await readOf(() => g.aggregate(x, 'max')), max.flat(), { atol: 0 }, 'max');
      x.dispose();
      g.dispose();
    });
  });

  describe('GCNConv and SAGEConv', () => {
    it('GCNConv equals Â·X·Wᵀ + b computed densely, in both propagation orders', async () => {
      const g = new nn.Graph(SRC, DST, N);
      for (const [inF, outF] of [[4, 2], [2, 4]]) {
        const layer = new nn.GCNConv(inF, outF, { seed: 3 });
        kiln.tidy(() => kiln.assign(layer.bias!, kiln.randn([outF], { seed: 4 })));
        const x = T(randND([N, inF], 5));
        const { src, dst, weight } = g.gcnNorm();
        const ahat = dense(await read(src), await read(dst), await read(weight), N);
        const xwT = kiln.tidy(() => x.matmul(layer.weight.transpose()));
        const xw = await rows(xwT);
        xwT.dispose();
        const b = await read(layer.bias!);
        const want = matmulRows(ahat, xw).map((r) => r.map((v, j) => v + b[j]));
        assertClose(await readOf(() => layer.forward(x, g)), want.flat(), { atol: 1e-5, rtol: 1e-5 }, `GCNConv(${inF}, ${outF})`);
        x.dispose();
        layer.dispose();
      }
      g.dispose();
    });

    it('SAGEConv equals W_neigh·mean(neighbours) + b + W_root·x, and normalize gives unit rows', async () => {
      const g = new nn.Graph(SRC, DST, N);
      const layer = new nn.SAGEConv(3, 2, { seed: 6 });
      const unit = new nn.SAGEConv(3, 2, { seed: 6, normalize: true, aggregator: 'max' });
      const x = T(randND([N, 3], 7));
      const want = await readOf(() => layer.neighbor.forward(g.aggregate(x, 'mean')).add(layer.root!.forward(x)));
      assertClose(await readOf(() => layer.forward(x, g)), want, { atol: 1e-6 }, 'SAGEConv');
      const norms = await readOf(() => unit.forward(x, g).square().sum(1));
      assertClose(norms, new Array(N).fill(1), { atol: 1e-5 }, 'unit rows');
      x.dispose();
      layer.dispose();
      unit.dispose();
      g.dispose();
    });

    it('take sparse features: the same outputs as from the dense matrix', async () => {
      const g = new nn.Graph(SRC, DST, N);
      const xs = randND([N, 4], 13).data.map((v, i) => (i % 2 ? v : 0));
      const sparse = kiln.SparseMatrix.fromDense(xs, [N, 4]);
      for (const layer of [new nn.GCNConv(4, 3, { seed: 14 }), new nn.SAGEConv(4, 3, { seed: 15 }), new nn.SAGEConv(4, 3, { seed: 16, aggregator: 'sum' })]) {
        const x = kiln.tensor(Float32Array.from(xs), [N, 4]);
        assertClose(await readOf(() => layer.forward(sparse, g)), await readOf(() => layer.forward(x, g)), { atol: 1e-5 }, layer.constructor.name);
        x.dispose();
        layer.dispose();
      }
      const max = new nn.SAGEConv(4, 3, { aggregator: 'max' });
      expectThrows(() => max.forward(sparse, g), 'SAGEConv(4 -> 3)', 'max aggregator needs dense features');
      const narrow = new nn.GCNConv(3, 2);
      expectThrows(() => narrow.forward(sparse, g), 'GCNConv(3 -> 2)', 'got a SparseMatrix [5, 4]');
      narrow.dispose();
      max.dispose();
      sparse.dispose();
      g.dispose();
    });

    it('gradients of input and every parameter match finite differences', async () => {
      const g = new nn.Graph(SRC, DST, N);
      for (const layer of [
        new nn.GCNConv(3, 2, { seed: 8 }),
        new nn.GCNConv(2, 3, { seed: 9 }),
        new nn.SAGEConv(3, 2, { seed: 10 }),
        new nn.SAGEConv(3, 2, { seed: 11, aggregator: 'sum', rootWeight: false }),
      ]) {
        const m = new OnGraph(layer, g);
        await gradCheck(m, randND([N, layer instanceof nn.GCNConv ? layer.inFeatures : 3], 12));
        m.dispose();
      }
      g.dispose();
    });

    it('rejects features that do not match the graph or the layer, naming the layer', () => {
      const g = new nn.Graph(SRC, DST, N);
      const gcn = new nn.GCNConv(3, 2);
      const sage = new nn.SAGEConv(3, 2);
      kiln.tidy(() => {
        expectThrows(() => gcn.forward(kiln.zeros([4, 3]), g), 'GCNConv(3 -> 2)', 'expected x [5, 3]', '[4, 3]');
        expectThrows(() => sage.forward(kiln.zeros([5, 2]), g), 'SAGEConv(3 -> 2)', 'expected x [5, 3]', '[5, 2]');
      });
      expectThrows(() => new nn.SAGEConv(3, 2, { aggregator: 'min' as 'max' }), 'SAGEConv', "aggregator must be 'sum', 'mean' or 'max'");
      expectThrows(() => new nn.GCNConv(0, 2), 'GCNConv', 'inFeatures must be a positive integer');
      gcn.dispose();
      sage.dispose();
      g.dispose();
    });
  });

  it('a 2-layer GCN beats an MLP on the features alone on a planted-community graph', async () => {
    const before = kiln.memory().numTensors;
    const data = communities(21);
    const labels = kiln.tensor(data.label);
    const trainIdx = kiln.tensor(Int32Array.from(data.train));
    const trainLabels = kiln.gather(labels, trainIdx);
    const run = async (forward: () => Tensor, params: Tensor[]): Promise<number> => {
      const opt = new kiln.optim.Adam(params, { lr: 0.02, weightDecay: 5e-4 });
      for (let epoch = 0; epoch < 100; epoch++) {
        kiln.tidy(() => {
          opt.zeroGrad();
          kiln.crossEntropy(kiln.gather(forward(), trainIdx), trainLabels).backward();
          opt.step();
        });
      }
      opt.dispose();
      return accuracyOn(forward, data.label, data.test);
    };
    const conv1 = new nn.GCNConv(data.f, 16, { seed: 1 });
    const conv2 = new nn.GCNConv(16, data.classes, { seed: 2 });
    const gcn = await run(() => conv2.forward(conv1.forward(data.x, data.graph).relu(), data.graph), [...conv1.parameters(), ...conv2.parameters()]);
    const mlp = new nn.Sequential(new nn.Linear(data.f, 16, { seed: 1 }), new nn.ReLU(), new nn.Linear(16, data.classes, { seed: 2 }));
    const baseline = await run(() => mlp.forward(data.x), mlp.parameters());
    expect(gcn, `GCN test accuracy (MLP on features: ${baseline})`).toBeGreaterThan(0.85);
    expect(gcn - baseline, `GCN ${gcn} vs MLP ${baseline}`).toBeGreaterThan(0.25);
    for (const m of [conv1, conv2, mlp]) m.dispose();
    data.graph.dispose();
    kiln.dispose([data.x, labels, trainIdx, trainLabels]);
    expect(kiln.memory().numTensors, 'the graph, its cached norm and the training loop leave nothing behind').toBe(before);
  });
});
