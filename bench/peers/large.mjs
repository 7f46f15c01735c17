// The large-model training steps of issue 18, so that gains on the small rows are shown to hold at
// realistic sizes:
//   resnet18Train     the CIFAR ResNet-18: conv 3x3 64 (stride 1, no max pool) + BatchNorm + ReLU,
//                     BasicBlocks [2, 2, 2, 2] of widths 64-128-256-512 (stride 2 from the second
//                     stage on, projection shortcuts), global average pool, Linear 512 -> 10;
//                     32x32x3 inputs, batch 64.
//   transformerTrain  6 pre-norm Transformer encoder layers, d 512, 8 heads, FFN 2048 (GELU), no
//                     dropout, on inputs [8, 256, 512]; mean over the sequence, Linear 512 -> 10.
// Softmax cross-entropy on random labels, Adam 1e-3, the loss read back each step. Each library
// uses its own initialization (the models are too large for a float64 reference in JavaScript), so
// the check is that training happens: the first loss is finite and near ln(10) (He / Xavier-style
// init on N(0, 1) inputs) and the loss after the timed steps on the same batch is lower.
import { timeStepRuns } from '../timing.mjs';
import { kilnStep, randomNormal } from './common.mjs';
import { randomInts } from './mlp.mjs';

/** The batch of a large row: x (Float32Array) of `shape`, labels (Int32Array). Seeded, shared. */
export function largeBatch(shape, classes) {
  const n = shape.reduce((a, b) => a * b, 1);
  return { x: randomNormal(n, 51), labels: randomInts(shape[0], classes, 52) };
}

/** Input shapes: [batch, 3, 32, 32] (ResNet) and [batch, T, d] (Transformer). */
export const resnetInput = ({ batch, size }) => [batch, 3, size, size];
export const transformerInput = ({ batch, seq, dModel }) => [batch, seq, dModel];

/**
 * Throws unless training happened: a finite first loss within a factor 2 of ln(classes) (a fresh
 * model's, give or take the init) and a lower loss after the timed steps on the same batch.
 */
export function checkTraining(what, first, last, classes) {
  const fresh = Math.log(classes);
  if (!(Number.isFinite(first) && first > fresh / 2 && first < fresh * 2)) throw new Error(`${what}: first-step loss ${first}, expected about ln(${classes}) = ${fresh.toFixed(3)} for a fresh model`);
  if (!(last < first)) throw new Error(`${what}: the loss did not go down over the timed steps on one batch (${first} -> ${last})`);
}

/** The CIFAR ResNet-18 in Kiln's nn (`k` is Kiln). */
function kilnResnet18(k, classes) {
  const { nn } = k;
  const blocks = [];
  let inC = 64;
  for (const [i, width] of [64, 128, 256, 512].entries()) {
    blocks.push(new nn.BasicBlock(inC, width, { stride: i === 0 ? 1 : 2 }), new nn.BasicBlock(width, width));
    inC = width;
  }
  return new nn.Sequential(
    new nn.Conv2d(3, 64, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(64), new nn.ReLU(),
    ...blocks,
    new nn.GlobalAvgPool2d(), new nn.Linear(512, classes),
  );
}

/** 6 encoder layers, mean over the sequence, a linear head: [B, T, d] -> [B, classes]. */
function kilnTransformer(k, { dModel, heads, ffn, layers, classes }) {
  const { nn } = k;
  const encoder = new nn.Sequential(...Array.from({ length: layers }, () => new nn.TransformerEncoderLayer(dModel, heads, { dimFeedforward: ffn, dropout: 0 })));
  const head = new nn.Linear(dModel, classes);
  return {
    forward: (x) => head.forward(encoder.forward(x).mean(1)),
    parameters: () => [...encoder.parameters(), ...head.parameters()],
    dispose() {
      encoder.dispose();
      head.dispose();
    },
  };
}

/** One training step of `model` (forward: x -> logits) on Kiln; returns { runs } after the check. */
function kilnTrain(k, what, model, shape, params) {
  const { x: xs, labels } = largeBatch(shape, params.classes);
  const x = k.tensor(xs, shape);
  const y = k.tensor(labels, [shape[0]], 'int32');
  const opt = new k.optim.Adam(model.parameters(), { lr: params.lr });
  const step = kilnStep(k, opt, () => model.forward(x), y);
  try {
    const first = step();
    const result = timeStepRuns(step);
    checkTraining(what, first, step(), params.classes);
    return result;
  } finally {
    opt.dispose();
    model.dispose();
    k.dispose([x, y]);
  }
}

export const kilnResnet18Train = (k, params) => kilnTrain(k, `kiln (${k.getBackend()}) resnet18`, kilnResnet18(k, params.classes), resnetInput(params), params);
export const kilnTransformerTrain = (k, params) => kilnTrain(k, `kiln (${k.getBackend()}) transformer`, kilnTransformer(k, params), transformerInput(params), params);
