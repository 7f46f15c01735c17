// The workloads: what is measured and how a time per call becomes the reported number.
//
// Each workload has a `kind`: a peer runs it if its `workloads` object has a function of that name
// (see peers/*.mjs). A peer without that function simply gets no entry for the workload. To add a
// workload (an MLP training step, conv2d, LSTM, attention), add an entry here and a function of the
// same kind to each peer that can run it.
//
// Optional fields:
//   lowerIsBetter  the unit is a cost (ms, MB): the table's ratio becomes peer / kiln, so kiln/X > 1
//                  still means Kiln is better.
//   parts          the peer's function returns an object of seconds keyed by part id instead of one
//                  number; each part is a row of its own ({ id, label }), converted with `value`.
//   child          the kind of another workload: each peer that has it runs it in a child process of
//                  its own (child.mjs), which reports its peak RSS (kilobytes) to `value`.
//   note(get)      a line (or an array of lines) printed under the table; get(rowId, library) is a
//                  value of this run.
//   probeAround    run the FMA probe (bench/flops-probe) right before and after each library's
//                  measurement; the mean of the two is the result `<id>-probe` of that library
//                  (not a table row: the note compares the row with it).

const matmul = (n) => ({
  id: `matmul-${n}`,
  kind: 'matmul',
  params: { n },
  label: `matmul f32 ${n}x${n}`,
  unit: 'GFLOP/s',
  // 2*N^3 floating-point operations (a multiply and an add per inner step).
  value: (secondsPerCall) => (2 * n ** 3) / secondsPerCall / 1e9,
});

/**
 * conv2d forward, NCHW in Kiln (NHWC in tfjs, its native layout), 'same' padding, stride 1, no
 * bias: 2·batch·size²·filters·channels·kernel² FLOPs per call.
 */
function conv2d(id, params) {
  const { batch, channels, size, filters, kernel } = params;
  return {
    id,
    kind: 'conv2d',
    params,
    label: `conv2d b${batch} ${size}x${size}x${channels}->${filters} ${kernel}x${kernel} same`,
    unit: 'GFLOP/s',
    value: (secondsPerCall) => (2 * batch * size * size * filters * channels * kernel * kernel) / secondsPerCall / 1e9,
  };
}

/**
 * 2-D max or average pooling forward, NCHW in Kiln (NHWC in tfjs), no padding: input values per
 * second (each is read once or more; windows overlap when stride < kernel), in G/s.
 */
function pool2d(id, params) {
  const { op, batch, channels, size, kernel, stride } = params;
  return {
    id,
    kind: 'pool2d',
    params,
    label: `${op}Pool2d b${batch} ${size}x${size}x${channels} ${kernel}x${kernel} s${stride}`,
    unit: 'Gvalues/s',
    value: (secondsPerCall) => (batch * channels * size * size) / secondsPerCall / 1e9,
  };
}

/** A read-probe row: both threads each sum `kib` KiB of their own (sized for `level`), in GB/s. */
function memoryRead(id, kib, level) {
  return {
    id,
    kind: 'memoryRead',
    params: { kib },
    label: `memory read ${kib >= 1024 ? `${kib / 1024} MiB` : `${kib} KiB`}/thread (${level}, probe)`,
    unit: 'GB/s',
    // The peer returns runs of seconds per GB, the form of a training step's runs.
    value: (secondsPerGB) => 1 / secondsPerGB,
  };
}

/** The MLP training step of issue 3 (peers/mlp.mjs builds the model and the batch). */
export const MLP = { batch: 128, inputs: 784, hidden: 512, classes: 10, lr: 1e-3 };
/**
 * Nominal FLOPs of one step: each layer's weight takes part in 3 GEMM-shaped products (forward,
 * dW, dX) of 2·batch·fanIn·fanOut each. (The first layer's dX is not needed and a library may skip
 * it, as Kiln does; the nominal count keeps it, as the usual 6·batch·params convention does.)
 */
export const MLP_FLOPS = 6 * MLP.batch * (MLP.inputs * MLP.hidden + MLP.hidden * MLP.classes);

/** The LSTM training step (RNN family): batch 32, 32 steps, 64 inputs, 128 hidden, 10 classes. */
export const LSTM = { batch: 32, steps: 32, inputs: 64, hidden: 128, classes: 10, lr: 1e-3 };

/** The CNN training step (CNN family): 28x28x1, batch 64 (peers/cnn.mjs builds the model and the batch). */
export const CNN = { batch: 64, size: 28, classes: 10, lr: 1e-3 };

export const workloads = [
  {
    id: 'fma-peak',
    kind: 'fmaPeak',
    params: {},
    label: 'f32 FMA peak (probe, machine)',
    unit: 'GFLOP/s',
    // Not a library's figure: bench/flops-probe (independent FMAs in registers on all threads,
    // AVX-512 or AVX2 by run-time detection), shown in the kiln column; the GEMM ceiling.
    value: (gflops) => gflops,
  },
  // The machine's own run-to-run spread at each level of memory (bench/flops-probe --read), timed
  // like a training step (STEP_RUNS measurements of ~TARGET s, all reported): a training row's
  // spread next to these says how much of it the machine alone would give data that lives there.
  memoryRead('memory-l2', 256, 'L2'),
  memoryRead('memory-l3', 4096, 'L3'),
  memoryRead('memory-dram', 131072, 'DRAM'),
  matmul(64),
  matmul(256),
  {
    ...matmul(1024),
    probeAround: true,
    note(get) {
      const libraries = ['kiln', 'numpy', 'pytorch', 'onnxruntime'].filter((lib) => get('matmul-1024', lib) !== undefined);
      const percent = (lib, peak) => `${((100 * get('matmul-1024', lib)) / peak).toFixed(0)}%`;
      const lines = [];
      // Each library against the probe of its own seconds: the fair fraction on a machine whose speed drifts.
      const same = libraries.filter((lib) => get('matmul-1024-probe', lib) !== undefined);
      if (same.length) {
        const parts = same.map((lib) => `${lib} ${percent(lib, get('matmul-1024-probe', lib))} of ${get('matmul-1024-probe', lib).toFixed(0)}`);
        lines.push(`matmul 1024 as a fraction of the f32 FMA probe run right before and after it (mean of the two, GFLOP/s): ${parts.join(', ')} (issue 18's target: kiln >= 90%)`);
      }
      const peak = get('fma-peak', 'kiln');
      if (peak !== undefined && libraries.length) {
        lines.push(`matmul 1024 as a fraction of the fma-peak row (${peak.toFixed(0)} GFLOP/s, measured minutes earlier): ${libraries.map((lib) => `${lib} ${percent(lib, peak)}`).join(', ')}`);
      }
      return lines;
    },
  },
  {
    id: 'add-4',
    kind: 'add',
    params: { size: 4 },
    label: 'add f32[4] (tiny op)',
    unit: 'calls/s',
    // One op call with a tiny input: measures per-call overhead, not arithmetic.
    value: (secondsPerCall) => 1 / secondsPerCall,
  },
  {
    id: 'mlp-train',
    kind: 'mlpTrain',
    params: MLP,
    label: 'mlp-train 784-512-10 b128',
    unit: 'samples/s',
    // One training step (forward, cross-entropy, backward, Adam update, loss read back) on a batch.
    value: (secondsPerStep) => MLP.batch / secondsPerStep,
    note(get) {
      const step = get('mlp-train', 'kiln');
      if (step === undefined) return undefined;
      const gflops = (MLP_FLOPS * (step / MLP.batch)) / 1e9;
      const matmul = get('matmul-1024', 'kiln');
      const of = matmul === undefined ? " (no matmul-1024 row in this run to compare with)" : ` = ${((100 * gflops) / matmul).toFixed(0)}% of kiln's 1024 matmul GFLOP/s (${matmul.toFixed(0)})`;
      return `kiln mlp step: ${gflops.toFixed(1)} GFLOP/s effective${of}; nominal ${(MLP_FLOPS / 1e6).toFixed(0)} MFLOP per step (6·batch·params)`;
    },
  },
  {
    id: 'mlp-train-breakdown',
    kind: 'mlpTrainBreakdown',
    params: MLP,
    unit: 'ms',
    lowerIsBetter: true,
    // Average milliseconds of each phase of a step (peers/kiln.mjs and peers/tfjs.mjs say how).
    parts: [
      { id: 'forward', label: '  step: forward+loss' },
      { id: 'backward', label: '  step: backward' },
      { id: 'optimizer', label: '  step: optimizer' },
    ],
    value: (seconds) => seconds * 1000,
  },
  {
    id: 'mlp-train-rss',
    kind: 'mlpTrainRss',
    child: 'mlpTrain',
    params: MLP,
    label: 'mlp-train peak RSS',
    unit: 'MB',
    lowerIsBetter: true,
    // process.resourceUsage().maxRSS of a child process that loads one library and runs mlp-train.
    value: (kilobytes) => kilobytes / 1024,
  },
  // ---- recurrent layers (RNN family) ----
  {
    id: 'lstm-train',
    kind: 'lstmTrain',
    params: LSTM,
    label: 'lstm-train b32 t32 64-128 ->10',
    unit: 'samples/s',
    // One training step (LSTM, last hidden state -> dense 10, cross-entropy, backward, Adam,
    // loss read back); peers/lstm.mjs builds the model and the batch.
    value: (secondsPerStep) => LSTM.batch / secondsPerStep,
  },
  // ---- convolution (CNN family) ----
  conv2d('conv2d-a', { batch: 32, channels: 1, size: 28, filters: 32, kernel: 3 }),
  conv2d('conv2d-b', { batch: 8, channels: 64, size: 32, filters: 64, kernel: 3 }),
  // pooling (CNN family): the layers after conv2d-b's, as a VGG (2x2) and a ResNet stem (3x3 s2) pool
  pool2d('pool-max-2', { op: 'max', batch: 8, channels: 64, size: 32, kernel: 2, stride: 2 }),
  pool2d('pool-avg-2', { op: 'avg', batch: 8, channels: 64, size: 32, kernel: 2, stride: 2 }),
  pool2d('pool-max-3s2', { op: 'max', batch: 8, channels: 64, size: 33, kernel: 3, stride: 2 }),
  // attention (Transformer family): multi-head self-attention forward, batch 1, d 256, 4 heads.
  ...[128, 512].map((seq) => ({
    id: `attention-${seq}`,
    kind: 'selfAttention',
    params: { seq, dModel: 256, heads: 4 },
    label: `self-attention fwd T=${seq} d256 h4`,
    unit: 'tokens/s',
    // One forward pass of the layer over `seq` tokens (projections, attention, output projection).
    value: (secondsPerCall) => seq / secondsPerCall,
    note:
      seq === 512
        ? (get) => {
            const [kiln, tfWasm] = [get('attention-512', 'kiln'), get('attention-512', 'tfjs-wasm')];
            if (kiln === undefined || tfWasm === undefined) return undefined;
            return `self-attention T=512: kiln ${(kiln / tfWasm).toFixed(1)}x tfjs-wasm (target >= 5x)`;
          }
        : undefined,
  })),
  {
    id: 'cnn-train',
    kind: 'cnnTrain',
    params: CNN,
    label: 'cnn-train c32-p-c64-p-d128-d10 b64',
    unit: 'samples/s',
    // One training step (conv 3x3x32 relu, maxpool 2, conv 3x3x64 relu, maxpool 2, dense 128 relu,
    // dense 10, cross-entropy, backward, Adam, loss read back) on 28x28x1 inputs.
    value: (secondsPerStep) => CNN.batch / secondsPerStep,
  },
];

/** The ResNet-18-sized CNN step (bench/peers/large.mjs): CIFAR layout on 32x32x3, batch 64. */
export const RESNET18 = { batch: 64, size: 32, classes: 10, lr: 1e-3 };
/** The Transformer encoder step (bench/peers/large.mjs): 6 layers, d 512, 8 heads, FFN 2048, batch 8, T 256; Adam 1e-4 (at 1e-3, without warm-up, the loss on one batch jumps up within 5 steps). */
export const TRANSFORMER = { batch: 8, seq: 256, dModel: 512, heads: 8, ffn: 2048, layers: 6, classes: 10, lr: 1e-4 };

// ---- training at larger scale (issue 18): samples/s, and peak RSS of a child process per library ----
for (const [id, kind, params, label] of [
  ['resnet18-train', 'resnet18Train', RESNET18, 'resnet18-train cifar 32x32x3 b64'],
  ['transformer-train', 'transformerTrain', TRANSFORMER, 'transformer-train 6x d512 h8 b8 T256'],
]) {
  workloads.push(
    { id, kind, params, label, unit: 'samples/s', value: (secondsPerStep) => params.batch / secondsPerStep },
    { id: `${id}-rss`, kind: `${kind}Rss`, child: kind, params, label: `${id} peak RSS`, unit: 'MB', lowerIsBetter: true, value: (kilobytes) => kilobytes / 1024 },
  );
}

/** Workloads whose id or kind contains one of the `--only` patterns (all if none). */
export function selectWorkloads(only) {
  if (only.length === 0) return workloads;
  return workloads.filter((w) => only.some((p) => w.id.includes(p) || w.kind.includes(p)));
}
