/**
 * Cora (McCallum et al. 2000; the LINQS release): 2,708 machine-learning papers in 7 classes, a
 * 1,433-word binary bag of words per paper, and 5,429 citation links. Parsed from the release's
 * two text files, cora.content ("<paper id> <1433 × 0/1> <class>") and cora.cites ("<cited id>
 * <citing id>"), plus the Planetoid-style split used to benchmark graph networks on it.
 */

import { Random, resolveSeed, type Seed } from './random.js';

/** The Cora citation graph as typed arrays: node features and labels, and the citation edge list. */
export interface Cora {
  numNodes: number;
  numFeatures: number;
  /** Binary word presence, node after node. [numNodes * numFeatures] */
  features: Float32Array;
  /** Class per node, an index into `classes`. [numNodes] */
  labels: Int32Array;
  /** Class names, sorted (so label codes do not depend on file order). */
  classes: string[];
  /** The release's paper id of each node. */
  paperIds: string[];
  /** One entry per line of cora.cites: node `citing[i]` cites node `cited[i]`. */
  citing: Int32Array;
  cited: Int32Array;
}

/** Parses the text of cora.content and cora.cites. Errors name the file and line. */
export function parseCora(content: string, cites: string): Cora {
  const rows = content.split('\n').map((l) => l.trim()).filter((l) => l.length > 0).map((l) => l.split(/\s+/));
  if (rows.length === 0) throw new Error('parseCora: cora.content is empty');
  const numFeatures = rows[0].length - 2;
  if (numFeatures < 1) throw new Error(`parseCora: cora.content line 1 has ${rows[0].length} fields; expected an id, word flags and a class`);
  const numNodes = rows.length;
  const features = new Float32Array(numNodes * numFeatures);
  const classes = [...new Set(rows.map((r) => r[r.length - 1]))].sort();
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const labels = new Int32Array(numNodes);
  const paperIds: string[] = [];
  const node = new Map<string, number>();
  rows.forEach((r, i) => {
    if (r.length !== numFeatures + 2) throw new Error(`parseCora: cora.content line ${i + 1} has ${r.length} fields, expected ${numFeatures + 2}`);
    if (node.has(r[0])) throw new Error(`parseCora: cora.content line ${i + 1} repeats paper id ${r[0]}`);
    node.set(r[0], i);
    paperIds.push(r[0]);
    for (let j = 0; j < numFeatures; j++) {
      const v = r[j + 1];
      if (v !== '0' && v !== '1') throw new Error(`parseCora: cora.content line ${i + 1}, word ${j}: expected 0 or 1, got '${v}'`);
      features[i * numFeatures + j] = v === '1' ? 1 : 0;
    }
    labels[i] = classIndex.get(r[r.length - 1])!;
  });
  const links = cites.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const citing = new Int32Array(links.length);
  const cited = new Int32Array(links.length);
  links.forEach((l, i) => {
    const [a, b, extra] = l.split(/\s+/);
    const [to, from] = [node.get(a), node.get(b)];
    if (extra !== undefined || to === undefined || from === undefined) {
      throw new Error(`parseCora: cora.cites line ${i + 1} ('${l}') must name two papers of cora.content`);
    }
    cited[i] = to;
    citing[i] = from;
  });
  return { numNodes, numFeatures, features, labels, classes, paperIds, citing, cited };
}

/** Options of `planetoidSplit` (the split of Yang et al. 2016 that graph-network papers report on). */
export interface PlanetoidSplitOptions {
  /** Labelled training nodes per class (default 20). */
  perClass?: number;
  /** Validation nodes (default 500). */
  val?: number;
  /** Test nodes (default 1000). */
  test?: number;
  seed?: Seed;
}

/**
 * The semi-supervised node-classification split of Planetoid (Yang et al. 2016) and GCN (Kipf &
 * Welling 2017): `perClass` labelled nodes of each class for training, then `val` and `test`
 * nodes from the rest, drawn with a seeded shuffle (PyTorch Geometric's split="random").
 * labels [n] -> node indices, disjoint, each sorted.
 */
export function planetoidSplit(labels: ArrayLike<number>, options: PlanetoidSplitOptions = {}): { train: Int32Array; val: Int32Array; test: Int32Array } {
  const { perClass = 20, val = 500, test = 1000 } = options;
  const order = new Random(resolveSeed('planetoidSplit', options.seed)).permutation(labels.length);
  const taken = new Map<number, number>();
  const train: number[] = [];
  const rest: number[] = [];
  for (const i of order) {
    const seen = taken.get(labels[i]) ?? 0;
    if (seen < perClass) {
      taken.set(labels[i], seen + 1);
      train.push(i);
    } else {
      rest.push(i);
    }
  }
  for (const [c, n] of taken) if (n < perClass) throw new Error(`planetoidSplit: class ${c} has only ${n} nodes, fewer than perClass = ${perClass}`);
  if (val + test > rest.length) throw new Error(`planetoidSplit: ${val} validation + ${test} test nodes requested but only ${rest.length} remain after training`);
  const sorted = (a: number[]) => Int32Array.from(a).sort();
  return { train: sorted(train), val: sorted(rest.slice(0, val)), test: sorted(rest.slice(val, val + test)) };
}
