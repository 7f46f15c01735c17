//! Fused scaled dot-product attention on the device, forward and backward, computing what
//! kiln-core's `attention` computes (ops/attention): softmax(q·kᵀ·scale + masks)·v with the causal
//! mask aligned bottom-right, the key padding bias, and the same counter-based dropout mask (a hash
//! of the seed and the global (row, key) position, so forward and backward regenerate it alike and
//! a given seed drops the same weights on the CPU and the GPU).
//!
//! FlashAttention's scheme, as on the CPU: a workgroup owns 16 query rows of one head and streams
//! the keys past them in blocks of 16, keeping a running row maximum m and normalizer l (the
//! online softmax); the Tq×Tk score matrix never exists. Operand rows are staged through
//! workgroup memory 64 features at a time, so any head size works with 10 KiB of workgroup
//! memory. The forward pass saves only its output and lse = m + ln(l) per row (−inf for a row
//! that sees no key); backward recomputes each probability block from them:
//!   Δ = rowsum(dO ∘ O),  dS = P ∘ (dP − Δ),  dP = dO·Vᵀ,  dV = Pᵀ·dO,  dK = scale·dSᵀ·Q,  dQ = scale·dS·K,
//! in two kernels so every sum stays inside one workgroup (no atomics): one per query block for dQ,
//! one per key block for dK and dV.
//!
//! Layouts follow kiln-core's: operands are read through their strides (heads split by a permuted
//! view are read in place) and each result is written in its input's memory order ([B, Tq, H, Dv]
//! when q is such a view), so merging the heads back costs no copy.

use super::{check_u32_range, Params, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::AttentionOptions;
use kiln_core::{DType, KilnError, Result};

const OP: &str = "attention";
/// Query rows and keys per block (the workgroup is 16 × 16 threads: one per block element).
const BLOCK: usize = 16;

/// What the forward pass keeps for backward, besides its inputs: the output and the row
/// log-normalizers lse [B, H, Tq].
pub struct AttentionForward {
    pub out: GpuTensor,
    pub lse: GpuTensor,
}

/// The gradients of q, k and v, each in its input's layout.
pub struct AttentionGrads {
    pub q: GpuTensor,
    pub k: GpuTensor,
    pub v: GpuTensor,
}

/// The sizes and scalars every kernel of the family reads (parameter words 0..14).
struct Problem {
    batch: usize,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
    causal: bool,
    scale: f32,
    /// (keep threshold of the hash's top 24 bits, survivor scale, seed) when dropout is on.
    dropout: Option<(u32, f32, u64)>,
}

impl Problem {
    /// Checks shapes and dtypes as kiln-core does, and resolves the options: the scale defaults
    /// to 1/√D; dropout needs a seed (kiln-core draws it before calling the device).
    fn new(q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, bias: Option<&GpuTensor>, o: &AttentionOptions) -> Result<Problem> {
        let got = || format!("q {} {}, k {} {}, v {} {}", q.dtype(), fmt_shape(q.shape()), k.dtype(), fmt_shape(k.shape()), v.dtype(), fmt_shape(v.shape()));
        let fail = |what: String| Err(KilnError::new(OP, what));
        if [q, k, v].iter().any(|t| t.dtype() != DType::F32 || t.rank() != 4) {
            return fail(format!("q, k and v must be float32 [batch, heads, seq, dim]; got {}", got()));
        }
        let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
        if ks[..2] != qs[..2] || vs[..2] != qs[..2] || vs[2] != ks[2] || ks[3] != qs[3] {
            return fail(format!("q [B, H, Tq, D], k [B, H, Tk, D] and v [B, H, Tk, Dv] do not fit; got {}", got()));
        }
        if let Some(b) = bias {
            if b.dtype() != DType::F32 || b.shape() != [qs[0], ks[2]] {
                return fail(format!("the padding bias must be float32 [{}, {}], got {} {}", qs[0], ks[2], b.dtype(), fmt_shape(b.shape())));
            }
        }
        if !(0.0..1.0).contains(&o.dropout) {
            return fail(format!("dropout must be in [0, 1), got {}", o.dropout));
        }
        let dropout = if o.dropout > 0.0 {
            let seed = o.seed.ok_or_else(|| KilnError::new(OP, "dropout on the GPU needs a resolved seed"))?;
            // As kiln-core's DropoutMask::new: keep when the hash's top 24 bits are below keep·2²⁴.
            let keep = 1.0 - o.dropout;
            Some(((keep as f64 * (1u64 << 24) as f64) as u32, 1.0 / keep, seed))
        } else {
            None
        };
        let d = qs[3];
        let scale = o.scale.unwrap_or(if d == 0 { 1.0 } else { 1.0 / (d as f32).sqrt() });
        for t in [q, k, v] {
            check_u32_range(OP, t.end_index())?;
        }
        check_u32_range(OP, qs[0] * qs[1] * qs[2].max(ks[2]) * 2 + qs[0] * ks[2])?;
        Ok(Problem { batch: qs[0], heads: qs[1], tq: qs[2], tk: ks[2], d, dv: vs[3], causal: o.causal, scale, dropout })
    }

    fn rows(&self) -> usize {
        self.batch * self.heads * self.tq
    }

    /// Parameter words 0..14: sizes, flags, scale and the dropout mask.
    fn params(&self, has_bias: bool) -> Params {
        let (threshold, drop_scale, seed) = self.dropout.unwrap_or((0, 1.0, 0));
        Params::default()
            .words([self.batch, self.heads, self.tq, self.tk, self.d, self.dv, self.causal as usize, has_bias as usize])
            .f32(self.scale)
            .u32(self.dropout.is_some() as usize)
            .u32(threshold as usize)
            .f32(drop_scale)
            .u32((seed & 0xffff_ffff) as usize)
            .u32((seed >> 32) as usize)
    }

    fn groups(&self, dev: &GpuDevice, len: usize) -> Result<[u32; 3]> {
        let (x, y) = (len.div_ceil(BLOCK), self.batch * self.heads);
        let max = dev.limits().max_compute_workgroups_per_dimension as usize;
        if x > max || y > max {
            return Err(KilnError::new(OP, format!("{len} positions in {y} heads need more than this GPU's {max} workgroups per dimension")));
        }
        Ok([x as u32, y as u32, 1])
    }
}

/// Parameter words of one [B, H, T, D] operand: offset and its four strides.
fn layout_words(t: &GpuTensor) -> [usize; 5] {
    let s = t.strides();
    [t.offset(), s[0], s[1], s[2], s[3]]
}

/// A result shaped [B, H, T, D] in the memory order of `like` (kiln-core's Layout::like):
/// head-major when `like` is contiguous, else position-major ([B, T, H, D] memory), the order of
/// a projection split into heads.
fn allocate_like(dev: &GpuDevice, like: &GpuTensor, t: usize, d: usize) -> Result<GpuTensor> {
    let (b, h) = (like.shape()[0], like.shape()[1]);
    if like.is_contiguous() {
        GpuTensor::empty(dev, OP, &[b, h, t, d], DType::F32)
    } else {
        GpuTensor::empty(dev, OP, &[b, t, h, d], DType::F32)?.permute(&[0, 2, 1, 3])
    }
}

/// The key padding mask as an additive float32 bias [B, Tk], as kiln-core's `padding_bias`:
/// bool true (a padding key) -> −inf, float32 as given. kiln-core also rejects NaN and +inf in
/// a float mask; that check needs the values on the host, so the device path leaves it out.
pub fn padding_bias(dev: &GpuDevice, mask: &GpuTensor) -> Result<GpuTensor> {
    match mask.dtype() {
        DType::F32 => mask.contiguous(dev),
        DType::Bool => {
            let expr = "select(0.0, -kiln_inf(), x != 0u)";
            super::map::run(dev, super::map::Map { op: OP, kernel: "attention:padding_bias", inputs: &[("x", mask)], out_dtype: DType::F32, body: "", expr, alpha: 0.0 })
        }
        other => Err(KilnError::new(OP, format!("keyPaddingMask must be bool or float32, got {other} {}", fmt_shape(mask.shape())))),
    }
}

/// Forward: q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] float32 (any strides), `bias` the
/// additive padding bias [B, Tk] (see `padding_bias`) -> the output [B, H, Tq, Dv] and lse.
/// `options.tiles` is the CPU's; the device's blocks are fixed at 16 × 16.
pub fn attention(dev: &GpuDevice, q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, bias: Option<&GpuTensor>, options: &AttentionOptions) -> Result<AttentionForward> {
    let p = Problem::new(q, k, v, bias, options)?;
    let out = allocate_like(dev, q, p.tq, p.dv)?;
    let lse = GpuTensor::empty(dev, OP, &[p.batch, p.heads, p.tq], DType::F32)?;
    if p.rows() == 0 {
        return Ok(AttentionForward { out, lse });
    }
    let params = p
        .params(bias.is_some())
        .words(layout_words(q))
        .words(layout_words(k))
        .words(layout_words(v))
        .words([0; 10])
        .words(layout_words(&out))
        .upload(dev, OP)?;
    // Without a bias the binding still needs a buffer: the (read-only) parameter block serves.
    let bias_buffer = bias.map_or(params.buffer(), |b| b.buffer());
    let buffers = [params.buffer(), q.buffer(), k.buffer(), v.buffer(), bias_buffer, out.buffer(), lse.buffer()];
    dev.dispatch(OP, "attention:forward", forward_source, &buffers, p.groups(dev, p.tq)?)?;
    Ok(AttentionForward { out, lse })
}

/// Backward: the gradients of q, k and v from the forward's inputs, its saved `out` and `lse`,
/// and the output gradient `g` [B, H, Tq, Dv] (any strides). Same `bias` and `options` as forward.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(dev: &GpuDevice, q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, bias: Option<&GpuTensor>, saved: &AttentionForward, g: &GpuTensor, options: &AttentionOptions) -> Result<AttentionGrads> {
    let p = Problem::new(q, k, v, bias, options)?;
    if g.dtype() != DType::F32 || g.shape() != saved.out.shape() {
        return Err(KilnError::new(OP, format!("the output gradient must be float32 {}, got {} {}", fmt_shape(saved.out.shape()), g.dtype(), fmt_shape(g.shape()))));
    }
    let dq = allocate_like(dev, q, p.tq, p.d)?;
    let dk = allocate_like(dev, k, p.tk, p.d)?;
    let dv = allocate_like(dev, v, p.tk, p.dv)?;
    // Empty sequences need no special case: a kernel over zero blocks is skipped, and one whose
    // rows see no key (Tk = 0) writes zeros.
    let lse = saved.lse.contiguous(dev)?;
    // stats = [lse (R) | Δ (R) | bias (B·Tk)]: one buffer so the gradient kernels stay within 8 bindings.
    let rows = p.rows();
    let stats = GpuTensor::empty(dev, OP, &[2 * rows + p.batch * p.tk], DType::F32)?;
    let base = |d1: &GpuTensor, d2: Option<&GpuTensor>| {
        p.params(bias.is_some())
            .words(layout_words(q))
            .words(layout_words(k))
            .words(layout_words(v))
            .words(layout_words(g))
            .words([0; 5])
            .words(layout_words(d1))
            .words(d2.map_or([0; 5], layout_words))
    };
    // Δ and the copies into stats: one thread per row (and per bias element).
    let params = base(&saved.out, None).upload(dev, OP)?;
    let bias_buffer = bias.map_or(lse.buffer(), |b| b.buffer());
    let threads = rows.max(p.batch * p.tk);
    let buffers = [params.buffer(), saved.out.buffer(), g.buffer(), lse.buffer(), bias_buffer, stats.buffer()];
    dev.dispatch(OP, "attention:backward_stats", stats_source, &buffers, dev.groups_1d(threads))?;

    let params = base(&dq, None).upload(dev, OP)?;
    let buffers = [params.buffer(), q.buffer(), k.buffer(), v.buffer(), g.buffer(), stats.buffer(), dq.buffer()];
    dev.dispatch(OP, "attention:backward_dq", dq_source, &buffers, p.groups(dev, p.tq)?)?;

    let params = base(&dk, Some(&dv)).upload(dev, OP)?;
    let buffers = [params.buffer(), q.buffer(), k.buffer(), v.buffer(), g.buffer(), stats.buffer(), dk.buffer(), dv.buffer()];
    dev.dispatch(OP, "attention:backward_dkv", dkv_source, &buffers, p.groups(dev, p.tk)?)?;
    Ok(AttentionGrads { q: dq, k: dk, v: dv })
}

// ---- WGSL ---------------------------------------------------------------------------------------
//
// Parameter words: 0 B, 1 H, 2 Tq, 3 Tk, 4 D, 5 Dv, 6 causal, 7 has bias, 8 scale, 9 dropout on,
// 10 keep threshold, 11 survivor scale, 12 seed low, 13 seed high, then five words (offset and
// strides of b, h, t, d) per operand: 14 q, 19 k, 24 v, 29 dO, 34 (spare), 39 first result,
// 44 second result.

const Q: u32 = 14;
const K: u32 = 19;
const V: u32 = 24;
const G: u32 = 29;
const OUT1: u32 = 39;
const OUT2: u32 = 44;

/// Helpers shared by the kernels: parameters, indexing, the masks, the dropout hash, and the
/// score block q·kᵀ (plus dO·vᵀ for the gradient kernels, `with_grad`).
fn common(with_grad: bool) -> String {
    format!(
        "@group(0) @binding(0) var<storage, read> params: array<u32>;
// The running max before any key was seen: -f32::MAX written exactly. Chromium's WGSL compiler
// (Tint) rejects a literal beyond f32::MAX, such as -3.4028235e38, where naga rounds it.
const NEG: f32 = -340282346638528859811704183484516925440.0;
var<workgroup> ta: array<f32, 1024>; // [16 rows][64 features] of the left operand
var<workgroup> tb: array<f32, 1024>; // [16 rows][64 features] of the right operand
var<workgroup> w: array<f32, 256>;   // a block of weights [16 queries][16 keys]
var<workgroup> w2: array<f32, 256>;

fn at(o: u32, b: u32, h: u32, t: u32, d: u32) -> u32 {{
  return params[o] + b * params[o + 1u] + h * params[o + 2u] + t * params[o + 3u] + d * params[o + 4u];
}}
fn scale() -> f32 {{ return bitcast<f32>(params[8]); }}
fn is_neg_inf(x: f32) -> bool {{ return bitcast<u32>(x) == 0xff800000u; }}
// Through a parameter: a constant expression evaluating to -inf fails WGSL shader creation.
fn from_bits(bits: u32) -> f32 {{ return bitcast<f32>(bits); }}
// Keys query i sees: 0..key_limit(i); causal masks are aligned bottom-right (query i sees keys
// up to i + Tk - Tq), as kiln-core's Problem::key_limit.
fn key_limit(i: u32) -> u32 {{
  let tq = params[2];
  let tk = params[3];
  if (params[6] == 0u) {{ return tk; }}
  return u32(clamp(i32(i) + i32(tk) - i32(tq) + 1, 0, i32(tk)));
}}
fn first_query(j: u32) -> u32 {{
  let tq = params[2];
  let tk = params[3];
  if (params[6] == 0u) {{ return 0u; }}
  return u32(clamp(i32(j) - (i32(tk) - i32(tq)), 0, i32(tq)));
}}
// The dropout mask, bit for bit kiln-core's DropoutMask (xorshift-multiply mixer of the seed,
// the global row (b·H + h)·Tq + i and the key j).
fn mix32(x0: u32) -> u32 {{
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}}
fn row_key(row: u32) -> u32 {{
  let lo = mix32(params[12] ^ mix32(row));
  return mix32(lo ^ params[13] ^ mix32(0x9e3779b9u));
}}
// The weight of (row, key j) after dropout: 0 when dropped, value·(1/keep) when kept.
fn drop(value: f32, row: u32, j: u32) -> f32 {{
  if (params[9] == 0u) {{ return value; }}
  let hash = mix32(row_key(row) ^ (j * 0x9e3779b9u));
  return select(0.0, value * bitcast<f32>(params[11]), (hash >> 8u) < params[10]);
}}
{dot_qk}{dot_gv}",
        dot_qk = block_dot("q", "k", Q, K, 4),
        dot_gv = if with_grad { block_dot("g", "v", G, V, 5) } else { String::new() },
    )
}

/// `dot_A_B(b, h, a0, b0, r, c, lid)`: Σ_d A[b, h, a0 + r, d]·B[b, h, b0 + c, d] over the
/// `len_word` parameter's features, both operands' rows staged 64 features at a time (rows past
/// the sequence read 0). Every thread of the workgroup must call it (barriers).
fn block_dot(a: &str, b: &str, oa: u32, ob: u32, len_word: u32) -> String {
    format!(
        "fn dot_{a}_{b}(bb: u32, h: u32, a0: u32, a_end: u32, b0: u32, b_end: u32, r: u32, c: u32, lid: u32) -> f32 {{
  let len = params[{len_word}];
  var s = 0.0;
  for (var d0 = 0u; d0 < len; d0 = d0 + 64u) {{
    for (var e = lid; e < 1024u; e = e + 256u) {{
      let row = e / 64u;
      let d = d0 + e % 64u;
      var va = 0.0;
      var vb = 0.0;
      if (a0 + row < a_end && d < len) {{ va = {a}[at({oa}u, bb, h, a0 + row, d)]; }}
      if (b0 + row < b_end && d < len) {{ vb = {b}[at({ob}u, bb, h, b0 + row, d)]; }}
      ta[e] = va;
      tb[e] = vb;
    }}
    workgroupBarrier();
    let n = min(64u, len - d0);
    for (var d = 0u; d < n; d = d + 1u) {{ s = s + ta[r * 64u + d] * tb[c * 64u + d]; }}
    workgroupBarrier();
  }}
  return s;
}}
"
    )
}

/// `acc_NAME(...)`: DST[row] = DST[row]·keep + mul·Σ_x W(wrow, x)·B[b, h, b0 + x, :] for the
/// thread's features (lane, lane + 16, ...), B's rows staged through workgroup memory. W is the
/// workgroup array `weights` read as [wrow][x], or as [x][wrow] when `transposed` (dK and dV sum
/// over query rows). Every thread must call it (barriers); `dst_ok` masks the write.
#[allow(clippy::too_many_arguments)]
fn block_accumulate(name: &str, b: &str, ob: u32, dst: &str, od: u32, weights: &str, transposed: bool, len_word: u32) -> String {
    let weight = if transposed { format!("{weights}[x * 16u + wrow]") } else { format!("{weights}[wrow * 16u + x]") };
    format!(
        "fn acc_{name}(bb: u32, h: u32, b0: u32, b_end: u32, dst_t: u32, dst_ok: bool, keep: f32, mul: f32, wrow: u32, lane: u32, lid: u32) {{
  let len = params[{len_word}];
  for (var d0 = 0u; d0 < len; d0 = d0 + 64u) {{
    for (var e = lid; e < 1024u; e = e + 256u) {{
      let row = e / 64u;
      let d = d0 + e % 64u;
      var value = 0.0;
      if (b0 + row < b_end && d < len) {{ value = {b}[at({ob}u, bb, h, b0 + row, d)]; }}
      tb[e] = value;
    }}
    workgroupBarrier();
    if (dst_ok) {{
      for (var f = lane; f < 64u && d0 + f < len; f = f + 16u) {{
        var s = 0.0;
        for (var x = 0u; x < 16u; x = x + 1u) {{ s = s + {weight} * tb[x * 64u + f]; }}
        let i = at({od}u, bb, h, dst_t, d0 + f);
        {dst}[i] = {dst}[i] * keep + mul * s;
      }}
    }}
    workgroupBarrier();
  }}
}}
"
    )
}

/// Zeroes the thread's features (lane, lane + 16, ...) of row t of a result.
fn zero_row(dst: &str, od: u32, len_word: u32) -> String {
    format!(
        "fn zero_{dst}(bb: u32, h: u32, t: u32, lane: u32) {{
  for (var d = lane; d < params[{len_word}]; d = d + 16u) {{ {dst}[at({od}u, bb, h, t, d)] = 0.0; }}
}}
"
    )
}

/// The score of query i, key j from the raw dot product: scale, padding bias, masks. Returns
/// NEG for a key the query does not see. `bias_at` is the WGSL expression of the bias of key j.
fn score_fn(bias_at: &str) -> String {
    format!(
        "fn score(raw: f32, bb: u32, i: u32, j: u32) -> f32 {{
  if (i >= params[2] || j >= key_limit(i)) {{ return NEG; }}
  var s = raw * scale();
  if (params[7] != 0u) {{
    let bv = {bias_at};
    if (is_neg_inf(bv)) {{ return NEG; }}
    s = s + bv;
  }}
  return s;
}}
"
    )
}

const ENTRY_2D: &str = "@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>) {
  let r = l3.y;
  let c = l3.x;
  let lid = r * 16u + c;
  let bh = wid.y;
  let bb = bh / params[1];
  let h = bh % params[1];
  let tq = params[2];
  let tk = params[3];";

fn forward_source() -> String {
    format!(
        "{common}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
{score}{acc}{zero}
{ENTRY_2D}
  let i0 = wid.x * 16u;
  let i_end = min(i0 + 16u, tq);
  let i = i0 + r;
  let row_ok = i < tq;
  if (row_ok) {{ zero_out(bb, h, i, c); }}
  var m = NEG;
  var l = 0.0;
  let keys = key_limit(i_end - 1u);
  for (var j0 = 0u; j0 < keys; j0 = j0 + 16u) {{
    let s = score(dot_q_k(bb, h, i0, tq, j0, tk, r, c, lid), bb, i, j0 + c);
    w[lid] = s;
    workgroupBarrier();
    var block_max = NEG;
    for (var x = 0u; x < 16u; x = x + 1u) {{ block_max = max(block_max, w[r * 16u + x]); }}
    let m_new = max(m, block_max);
    workgroupBarrier();
    var e = 0.0;
    if (s > NEG) {{ e = exp(s - m_new); }}
    w2[lid] = e;
    // The normalizer keeps every weight; only the values they carry are dropped.
    w[lid] = drop(e, bh * tq + i, j0 + c);
    workgroupBarrier();
    var sum = 0.0;
    for (var x = 0u; x < 16u; x = x + 1u) {{ sum = sum + w2[r * 16u + x]; }}
    // Rescale what was accumulated under the old maximum (0 on the first block that sees a key).
    let alpha = exp(m - m_new);
    l = l * alpha + sum;
    m = m_new;
    acc_out(bb, h, j0, tk, i, row_ok, alpha, 1.0, r, c, lid);
  }}
  if (row_ok) {{
    for (var d = c; d < params[5]; d = d + 16u) {{
      let o = at({OUT1}u, bb, h, i, d);
      out[o] = select(0.0, out[o] / l, l > 0.0);
    }}
    if (c == 0u) {{ lse[bh * tq + i] = select(from_bits(0xff800000u), m + log(l), l > 0.0); }}
  }}
}}
",
        common = common(false),
        score = score_fn("bias[bb * params[3] + j]"),
        acc = block_accumulate("out", "v", V, "out", OUT1, "w", false, 5),
        zero = zero_row("out", OUT1, 5),
    )
}

/// Δ = rowsum(dO ∘ O) per row, copied with lse and the bias into one buffer (see attention_backward).
fn stats_source() -> String {
    format!(
        "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> o: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
fn at(o: u32, b: u32, h: u32, t: u32, d: u32) -> u32 {{
  return params[o] + b * params[o + 1u] + h * params[o + 2u] + t * params[o + 3u] + d * params[o + 4u];
}}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let idx = {LINEAR_INDEX};
  let tq = params[2];
  let rows = params[0] * params[1] * tq;
  if (idx < rows) {{
    let i = idx % tq;
    let bh = idx / tq;
    let bb = bh / params[1];
    let h = bh % params[1];
    var s = 0.0;
    for (var d = 0u; d < params[5]; d = d + 1u) {{ s = s + g[at({G}u, bb, h, i, d)] * o[at({OUT1}u, bb, h, i, d)]; }}
    stats[idx] = lse[idx];
    stats[rows + idx] = s;
  }}
  if (params[7] != 0u && idx < params[0] * params[3]) {{ stats[2u * rows + idx] = bias[idx]; }}
}}
"
    )
}

/// The weights of one block in the gradient kernels, for the thread's (query i, key j):
/// P = exp(score − lse) (0 for a hidden key or a row that saw none), the weight O was built from
/// (P after dropout: written to `w`) and dS = P ∘ (dP − Δ) (written to `w2`).
const GRAD_BLOCK: &str = "
fn grad_block(bb: u32, bh: u32, h: u32, i0: u32, j0: u32, r: u32, c: u32, lid: u32) {
  let tq = params[2];
  let tk = params[3];
  let rows = params[0] * params[1] * tq;
  let i = i0 + r;
  let j = j0 + c;
  let s = score(dot_q_k(bb, h, i0, tq, j0, tk, r, c, lid), bb, i, j);
  let dp_raw = dot_g_v(bb, h, i0, tq, j0, tk, r, c, lid);
  var p = 0.0;
  var delta = 0.0;
  if (s > NEG) {
    let row_lse = stats[bh * tq + i];
    delta = stats[rows + bh * tq + i];
    if (!is_neg_inf(row_lse)) { p = exp(s - row_lse); }
  }
  // O used the dropped weights: dV needs them, and dP flows back through the same mask.
  w[lid] = drop(p, bh * tq + i, j);
  w2[lid] = p * (drop(dp_raw, bh * tq + i, j) - delta);
}
";

fn grad_common() -> String {
    let bias_at = "stats[2u * params[0] * params[1] * params[2] + bb * params[3] + j]";
    format!(
        "{common}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
{score}{GRAD_BLOCK}",
        common = common(true),
        score = score_fn(bias_at),
    )
}

/// dQ = scale·dS·K: a workgroup per query block, over the key blocks its rows see.
fn dq_source() -> String {
    format!(
        "{grad}
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
{acc}{zero}
{ENTRY_2D}
  let i0 = wid.x * 16u;
  let i = i0 + r;
  let row_ok = i < tq;
  if (row_ok) {{ zero_dq(bb, h, i, c); }}
  let keys = key_limit(min(i0 + 16u, tq) - 1u);
  for (var j0 = 0u; j0 < keys; j0 = j0 + 16u) {{
    grad_block(bb, bh, h, i0, j0, r, c, lid);
    acc_dq(bb, h, j0, tk, i, row_ok, 1.0, scale(), r, c, lid);
  }}
}}
",
        grad = grad_common(),
        acc = block_accumulate("dq", "k", K, "dq", OUT1, "w2", false, 4),
        zero = zero_row("dq", OUT1, 4),
    )
}

/// dV = Pᵀ·dO and dK = scale·dSᵀ·Q: a workgroup per key block, over the query blocks that see it.
/// The block is computed as in dq_source (thread (r, c) = query i0 + r, key j0 + c); the
/// accumulation then gives thread (r, c) key j0 + r and features c, c + 16, ...
fn dkv_source() -> String {
    format!(
        "{grad}
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
{acc_v}{acc_k}{zero_k}{zero_v}
{ENTRY_2D}
  let j0 = wid.x * 16u;
  let j = j0 + r;
  let key_ok = j < tk;
  if (key_ok) {{
    zero_dk(bb, h, j, c);
    zero_dv(bb, h, j, c);
  }}
  for (var i0 = first_query(j0); i0 < tq; i0 = i0 + 16u) {{
    grad_block(bb, bh, h, i0, j0, r, c, lid);
    acc_dv(bb, h, i0, tq, j, key_ok, 1.0, 1.0, r, c, lid);
    acc_dk(bb, h, i0, tq, j, key_ok, 1.0, scale(), r, c, lid);
  }}
}}
",
        grad = grad_common(),
        acc_v = block_accumulate("dv", "g", G, "dv", OUT2, "w", true, 5),
        acc_k = block_accumulate("dk", "q", Q, "dk", OUT1, "w2", true, 4),
        zero_k = zero_row("dk", OUT1, 4),
        zero_v = zero_row("dv", OUT2, 5),
    )
}
