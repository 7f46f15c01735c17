/**
 * ONNX Attention (opset 23+): softmax(q·kᵀ·scale + bias)·v composed from matmul, softmax and
 * elementwise ops, with ONNX's options: 3-D inputs split into q_num_heads / kv_num_heads heads,
 * grouped-query attention (kv heads repeated), a bool or additive attn_mask (padded to the key
 * length), is_causal aligned after a past cache, past_key/past_value concatenated into the present
 * outputs, softcap, and the qk_matmul_output modes. Rows whose keys are all masked give zeros, as
 * the reference does. (Kiln's fused attention kernel takes only a key padding mask; composing keeps
 * every option and the gradients.)
 */

import { tensor } from '../../ops/creation.js';
import { add, div, equal, mul, tanh, where } from '../../ops/elementwise.js';
import { matmul } from '../../ops/matmul.js';
import { max, softmax } from '../../ops/reduce.js';
import { concat, expand, pad, permute, reshape, unsqueeze } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { input, type Inputs, type OnnxNode, type OpImpl } from '../node.js';

/** [B, T, H·D] -> [B, H, T, D]. */
const splitHeads = (x: Tensor, heads: number): Tensor => permute(reshape(x, [x.shape[0], x.shape[1], heads, -1]), [0, 2, 1, 3]);

/** The additive bias [.., Tq, Tk]: the mask (bool: 0 where true, -inf elsewhere) plus the causal frontier. */
function biasOf(mask: Tensor | undefined, tq: number, tk: number, causal: boolean, offset: number): Tensor | undefined {
  let bias: Tensor | undefined;
  if (mask !== undefined) {
    const short = tk - mask.shape[mask.rank - 1];
    let m = mask;
    if (short > 0) {
      const pads: Array<[number, number]> = m.shape.map((_, i) => (i === m.rank - 1 ? [0, short] : [0, 0]));
      m = m.dtype === 'bool' ? pad(m.cast('float32'), pads, 0).cast('bool') : pad(m, pads, -Infinity);
    }
    bias = m.dtype === 'bool' ? where(m, 0, -Infinity) : m;
  }
  if (causal) {
    const frontier = new Float32Array(tq * tk);
    for (let i = 0; i < tq; i++) for (let j = 0; j < tk; j++) frontier[i * tk + j] = j <= i + offset ? 0 : -Infinity;
    const c = tensor(frontier, [tq, tk]);
    bias = bias === undefined ? c : add(bias, c);
  }
  return bias;
}

function attentionOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  let q = input(inputs, 0, node);
  let k = input(inputs, 1, node);
  let v = input(inputs, 2, node);
  const [mask, pastKey, pastValue] = [inputs[3], inputs[4], inputs[5]];
  if (inputs[6] !== undefined) node.fail('nonpad_kv_seqlen is not supported');
  if (node.int('left_window_size', -1) >= 0 || node.int('right_window_size', -1) >= 0) node.fail('sliding windows are not supported');
  const threeD = q.rank === 3;
  if (threeD) {
    const qHeads = node.int('q_num_heads') ?? node.fail('3-D inputs need q_num_heads');
    const kvHeads = node.int('kv_num_heads') ?? node.fail('3-D inputs need kv_num_heads');
    [q, k, v] = [splitHeads(q, qHeads), splitHeads(k, kvHeads), splitHeads(v, kvHeads)];
  } else if (q.rank !== 4) {
    node.fail(`Q must be [B, T, H·D] or [B, H, T, D], got [${q.shape.join(', ')}]`);
  }
  if (pastKey !== undefined) k = concat([pastKey, k], 2);
  if (pastValue !== undefined) v = concat([pastValue, v], 2);
  const [presentKey, presentValue] = [k, v];
  const [batch, qHeads, tq, d] = q.shape;
  const [, kvHeads, tk] = k.shape;
  if (qHeads !== kvHeads) {
    // Grouped-query attention: each kv head serves qHeads / kvHeads query heads.
    const repeat = (t: Tensor): Tensor => reshape(expand(unsqueeze(t, 2), [batch, kvHeads, qHeads / kvHeads, tk, t.shape[3]]), [batch, qHeads, tk, t.shape[3]]);
    [k, v] = [repeat(k), repeat(v)];
  }
  const scale = node.float('scale', 1 / Math.sqrt(d));
  let qk = mul(matmul(q, k, false, true), scale);
  const softcap = node.float('softcap', 0);
  if (softcap > 0) qk = mul(tanh(div(qk, softcap)), softcap);
  const bias = biasOf(mask, tq, tk, node.int('is_causal', 0) === 1, pastKey === undefined ? 0 : pastKey.shape[2]);
  const withBias = bias === undefined ? qk : add(qk, bias);
  let weights = softmax(withBias, -1);
  if (bias !== undefined) weights = where(equal(max(bias, -1, true), -Infinity), 0, weights);
  let y = matmul(weights, v);
  if (threeD) y = reshape(permute(y, [0, 2, 1, 3]), [batch, tq, -1]);
  const mode = node.int('qk_matmul_output_mode', 0);
  const qkOut = mode === 2 ? withBias : mode === 3 ? weights : qk;
  return [y, presentKey, presentValue, qkOut];
}

export const attentionOps: Record<string, OpImpl> = { Attention: attentionOp };
