// The Transformer encoder of the ONNX bench (4 pre-norm layers, d 256, 4 heads, feed-forward 1024,
// 128 tokens), exported by kiln.onnx.save: shared by bench/onnx-models.mjs and bench/onnx-profile.mjs.
import { join } from 'node:path';

/** Writes the encoder for `batch` into `dir` (transformer-b<batch>.onnx) and returns its path. */
export function transformerFile(kiln, dir, batch) {
  const path = join(dir, `transformer-b${batch}.onnx`);
  class Encoder extends kiln.nn.Module {
    layers = Array.from({ length: 4 }, (_, i) => new kiln.nn.TransformerEncoderLayer(256, 4, { dimFeedforward: 1024, seed: i }));
    forward(x) {
      return this.layers.reduce((h, layer) => layer.forward(h), x);
    }
  }
  const model = new Encoder();
  kiln.onnx.save(model, [kiln.randn([batch, 128, 256], { seed: 1 })], path, { inputNames: ['x'], outputNames: ['y'] });
  model.dispose();
  return path;
}
