//! Weight-only quantization for inference: int8 per output channel, int4 per block of a row.
//!
//! Formats (weights [O, I], PyTorch's Linear layout):
//! - int8: q [O, I] int8, scales [O] float32; w[o, i] ≈ q[o, i] · scales[o], q in [-127, 127]
//!   (symmetric, scale = max|w[o, :]| / 127; -128 is never used so the range is symmetric).
//! - int4: packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)]; w[o, i] ≈ q · scales[o, i / block]
//!   with q in [-8, 7] (scale = max|block| / 7). Element 2j of a row is the low nibble of byte j,
//!   element 2j+1 the high nibble (two's complement); an odd row ends with a zero high nibble.
//!
//! `linear_q8` / `linear_q4` compute x · Wᵀ + b without ever holding the whole f32 weight: rows
//! are dequantized into a small scratch (one row for few samples, a tile for many, fed to the
//! GEMM). The ops are inference-only: there is no backward, and asking for one is an error.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::checked_numel;
use crate::multiversion;
use crate::parallel::{self, SendPtr};
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;

/// The block length of int4 quantization unless the caller chooses another.
pub const INT4_BLOCK: usize = 32;

/// Up to this many input rows, each weight row is dequantized once into an L1-sized scratch and
/// dotted with every input row; above it a tile of rows goes through the GEMM, whose register
/// blocking wins once the tile is reused by enough inputs (measured: examples/quantize-mnist.mjs).
const DOT_MAX_ROWS: usize = 4;
/// Weight rows dequantized per GEMM call: 64 rows of 784 floats (200 KB) stay in L2.
const TILE_ROWS: usize = 64;
/// Below this many multiply-adds the op runs on one thread (as matmul.rs).
const MIN_PARALLEL_FLOPS: usize = 96 * 96 * 96;

/// How a row of quantized weights is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Int8,
    Int4 { block: usize },
}

impl Format {
    /// Bytes per stored row and scales per row for `in_features` weights.
    fn row_sizes(self, in_features: usize) -> (usize, usize) {
        match self {
            Format::Int8 => (in_features, 1),
            Format::Int4 { block } => (in_features.div_ceil(2), in_features.div_ceil(block)),
        }
    }

    fn linear_op(self) -> &'static str {
        match self {
            Format::Int8 => "linearQ8",
            Format::Int4 { .. } => "linearQ4",
        }
    }
}

// ---- quantization --------------------------------------------------------------------------

/// Symmetric int8 per output channel. w [O, I] float32 -> (q [O, I] int8, scales [O] float32).
pub fn quantize_int8(w: &Tensor) -> Result<(Tensor, Tensor)> {
    crate::device::cpu_only("quantizeInt8", &[Some(w)])?;
    quantize(w, Format::Int8, "quantizeInt8")
}

/// Symmetric int4 per block of `block` consecutive weights of a row, two values per byte.
/// w [O, I] float32 -> (packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)] float32).
pub fn quantize_int4(w: &Tensor, block: usize) -> Result<(Tensor, Tensor)> {
    crate::device::cpu_only("quantizeInt4", &[Some(w)])?;
    if block == 0 {
        return Err(KilnError::new("quantizeInt4", format!("block must be at least 1, got 0 (weight {} {})", w.dtype(), fmt_shape(w.shape()))));
    }
    quantize(w, Format::Int4 { block }, "quantizeInt4")
}

fn quantize(w: &Tensor, format: Format, op: &str) -> Result<(Tensor, Tensor)> {
    if w.dtype() != DType::F32 || w.rank() != 2 {
        return Err(KilnError::new(op, format!("expected a float32 weight [outFeatures, inFeatures], got {} {}", w.dtype(), fmt_shape(w.shape()))));
    }
    let (rows, cols) = (w.shape()[0], w.shape()[1]);
    let data = w.materialize()?;
    let data = data.contiguous_slice::<f32>().expect("materialized float32");
    if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
        return Err(KilnError::new(op, format!(
            "weight {} {} has a non-finite value ({}) at [{}, {}]; only finite weights can be quantized",
            w.dtype(), fmt_shape(w.shape()), data[bad], bad / cols.max(1), bad % cols.max(1)
        )));
    }
    let (row_bytes, row_scales) = format.row_sizes(cols);
    let mut q = try_zeroed::<i8>(op, checked_numel(op, &[rows, row_bytes])?)?;
    let mut scales = try_zeroed::<f32>(op, checked_numel(op, &[rows, row_scales])?)?;
    if cols > 0 {
        for ((src, dst), s) in data.chunks(cols).zip(q.chunks_mut(row_bytes)).zip(scales.chunks_mut(row_scales)) {
            match format {
                Format::Int8 => s[0] = quantize_group(src, 127.0, |j, v| dst[j] = v),
                Format::Int4 { block } => {
                    for (b, chunk) in src.chunks(block).enumerate() {
                        let base = b * block;
                        s[b] = quantize_group(chunk, 7.0, |j, v| {
                            let i = base + j;
                            let nibble = (v as u8) & 0x0f;
                            let byte = &mut dst[i / 2];
                            *byte = if i % 2 == 0 { (*byte as u8 & 0xf0 | nibble) as i8 } else { (*byte as u8 & 0x0f | nibble << 4) as i8 };
                        });
                    }
                }
            }
        }
    }
    let scale_shape: &[usize] = if format == Format::Int8 { &[rows] } else { &[rows, row_scales] };
    Ok((Tensor::from_buffer(Buffer::I8(q), &[rows, row_bytes]), Tensor::from_buffer(Buffer::F32(scales), scale_shape)))
}

/// Quantizes one group to integers in [-levels, levels], handing each to `put(index, q)`;
/// returns the scale (0 for an all-zero group, whose integers are then all 0).
fn quantize_group(values: &[f32], levels: f32, mut put: impl FnMut(usize, i8)) -> f32 {
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return 0.0;
    }
    let scale = max / levels;
    for (j, &v) in values.iter().enumerate() {
        put(j, (v / scale).round().clamp(-levels, levels) as i8);
    }
    scale
}

// ---- dequantization ------------------------------------------------------------------------

/// The float32 weight an int8 quantization stands for. q [O, I] int8, scales [O] -> [O, I].
pub fn dequantize_int8(q: &Tensor, scales: &Tensor) -> Result<Tensor> {
    crate::device::cpu_only("dequantizeInt8", &[Some(q), Some(scales)])?;
    let in_features = q.shape().get(1).copied().unwrap_or(0);
    dequantize(q, scales, Format::Int8, in_features, "dequantizeInt8")
}

/// The float32 weight an int4 quantization stands for.
/// packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)] -> [O, in_features].
pub fn dequantize_int4(packed: &Tensor, scales: &Tensor, in_features: usize, block: usize) -> Result<Tensor> {
    crate::device::cpu_only("dequantizeInt4", &[Some(packed), Some(scales)])?;
    if block == 0 {
        return Err(KilnError::new("dequantizeInt4", "block must be at least 1, got 0"));
    }
    dequantize(packed, scales, Format::Int4 { block }, in_features, "dequantizeInt4")
}

fn dequantize(q: &Tensor, scales: &Tensor, format: Format, in_features: usize, op: &str) -> Result<Tensor> {
    let (q, scales) = checked_weights(op, q, scales, format, in_features)?;
    let rows = q.shape()[0];
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &[rows, in_features])?)?;
    let (qs, ss) = (q.contiguous_slice::<i8>().unwrap(), scales.contiguous_slice::<f32>().unwrap());
    let (row_bytes, row_scales) = format.row_sizes(in_features);
    if in_features > 0 {
        for (o, dst) in out.chunks_mut(in_features).enumerate() {
            dequantize_row(format, &qs[o * row_bytes..(o + 1) * row_bytes], &ss[o * row_scales..(o + 1) * row_scales], dst);
        }
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &[rows, in_features]))
}

/// Checks a (weights, scales) pair against `format` and `in_features`; returns both contiguous.
fn checked_weights(op: &str, q: &Tensor, scales: &Tensor, format: Format, in_features: usize) -> Result<(Tensor, Tensor)> {
    let rows = q.shape().first().copied().unwrap_or(0);
    let (row_bytes, row_scales) = format.row_sizes(in_features);
    let want_scales: Vec<usize> = if format == Format::Int8 { vec![rows] } else { vec![rows, row_scales] };
    let ok = q.dtype() == DType::I8
        && q.rank() == 2
        && q.shape()[1] == row_bytes
        && scales.dtype() == DType::F32
        && scales.shape() == want_scales.as_slice();
    if !ok {
        let what = match format {
            Format::Int8 => format!("weights int8 [outFeatures, {in_features}] and scales float32 [outFeatures]"),
            Format::Int4 { block } => format!(
                "packed weights int8 [outFeatures, {row_bytes}] and scales float32 [outFeatures, {row_scales}] (inFeatures {in_features}, block {block})"
            ),
        };
        return Err(KilnError::new(op, format!(
            "expected {what}, got weights {} {} and scales {} {}",
            q.dtype(), fmt_shape(q.shape()), scales.dtype(), fmt_shape(scales.shape())
        )));
    }
    Ok((q.materialize()?, scales.materialize()?))
}

multiversion! {
    /// out[i] = q[i] · s: the int8 -> f32 widening vectorizes.
    fn dequantize_row_int8(q: &[i8], s: f32, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(q) {
            *o = v as f32 * s;
        }
    }
}

multiversion! {
    /// A whole int4 row with an even block length (each block is a run of whole bytes), in one
    /// dispatch: called per block, the dispatch cost more than the block's work.
    fn dequantize_row_int4(q: &[i8], scales: &[f32], block: usize, out: &mut [f32]) {
        for (b, chunk) in out.chunks_mut(block).enumerate() {
            let s = scales[b];
            let bytes = &q[b * block / 2..];
            let pairs = chunk.len() / 2;
            for (pair, &byte) in chunk.chunks_exact_mut(2).zip(&bytes[..pairs]) {
                // Shifting left then arithmetic right sign-extends a nibble.
                pair[0] = ((byte << 4) >> 4) as f32 * s;
                pair[1] = (byte >> 4) as f32 * s;
            }
            if chunk.len() % 2 == 1 {
                chunk[2 * pairs] = ((bytes[pairs] << 4) >> 4) as f32 * s;
            }
        }
    }
}

/// Expands one stored row into `out` (in_features floats).
fn dequantize_row(format: Format, q: &[i8], scales: &[f32], out: &mut [f32]) {
    match format {
        Format::Int8 => dequantize_row_int8(q, scales[0], out),
        Format::Int4 { block } if block % 2 == 0 => dequantize_row_int4(q, scales, block, out),
        Format::Int4 { block } => {
            for (i, o) in out.iter_mut().enumerate() {
                let byte = q[i / 2];
                let v = if i % 2 == 0 { (byte << 4) >> 4 } else { byte >> 4 };
                *o = v as f32 * scales[i / block];
            }
        }
    }
}

// ---- linear --------------------------------------------------------------------------------

/// x · Wᵀ + b with int8 weights. x [..., I] float32, q [O, I] int8, scales [O], bias [O] or
/// None -> [..., O]. Inference-only: errors if a gradient would be needed (see module comment).
pub fn linear_q8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::device::cpu_only("linearQ8", &[Some(x), Some(q), Some(scales), bias])?;
    linear(x, q, scales, bias, Format::Int8)
}

/// x · Wᵀ + b with int4 weights. x [..., I] float32, packed [O, ceil(I/2)] int8,
/// scales [O, ceil(I/block)], bias [O] or None -> [..., O]. Inference-only.
pub fn linear_q4(x: &Tensor, packed: &Tensor, scales: &Tensor, bias: Option<&Tensor>, block: usize) -> Result<Tensor> {
    crate::device::cpu_only("linearQ4", &[Some(x), Some(packed), Some(scales), bias])?;
    if block == 0 {
        return Err(KilnError::new("linearQ4", "block must be at least 1, got 0"));
    }
    linear(x, packed, scales, bias, Format::Int4 { block })
}

fn linear(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, format: Format) -> Result<Tensor> {
    let op = format.linear_op();
    if x.dtype() != DType::F32 || x.rank() == 0 {
        return Err(KilnError::new(op, format!("expected a float32 input [..., inFeatures], got {} {}", x.dtype(), fmt_shape(x.shape()))));
    }
    let in_features = x.shape()[x.rank() - 1];
    let (q, scales) = checked_weights(op, q, scales, format, in_features)
        .map_err(|e| KilnError::new(op, format!("{} (input {} {})", e.message, x.dtype(), fmt_shape(x.shape()))))?;
    let out_features = q.shape()[0];
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [out_features] {
            return Err(KilnError::new(op, format!("expected a float32 bias [{out_features}], got {} {}", b.dtype(), fmt_shape(b.shape()))));
        }
    }
    let tracked = x.requires_grad() || scales.requires_grad() || bias.is_some_and(|b| b.requires_grad());
    if tracked && autograd::is_enabled() {
        return Err(KilnError::new(op, format!(
            "is inference-only (no gradient through quantized weights), but an input requires gradients \
             (input {} {}); run it under noGrad or detach the input",
            x.dtype(), fmt_shape(x.shape())
        )));
    }
    let x = x.materialize()?;
    let rows = x.numel() / in_features.max(1);
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(out_features);
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &out_shape)?)?;
    let bias = match bias {
        Some(b) => Some(b.to_vec::<f32>().ok_or_else(|| KilnError::new(op, "cannot read the bias"))?),
        None => None,
    };
    let weights = RowSource {
        format,
        q: q.contiguous_slice::<i8>().unwrap(),
        scales: scales.contiguous_slice::<f32>().unwrap(),
        in_features,
    };
    if rows > 0 && out_features > 0 {
        linear_kernel(x.contiguous_slice::<f32>().unwrap(), rows, &weights, bias.as_deref(), &mut out, out_features);
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &out_shape))
}

/// Quantized weight rows, expanded on demand.
struct RowSource<'a> {
    format: Format,
    q: &'a [i8],
    scales: &'a [f32],
    in_features: usize,
}

impl RowSource<'_> {
    fn expand(&self, row: usize, out: &mut [f32]) {
        let (row_bytes, row_scales) = self.format.row_sizes(self.in_features);
        dequantize_row(self.format, &self.q[row * row_bytes..(row + 1) * row_bytes], &self.scales[row * row_scales..(row + 1) * row_scales], out);
    }
}

/// out[n, o] = x[n, :] · W[o, :] + bias[o], output rows O split across threads.
fn linear_kernel(x: &[f32], n: usize, w: &RowSource, bias: Option<&[f32]>, out: &mut [f32], o_dim: usize) {
    let k = w.in_features;
    let flops = n.saturating_mul(o_dim).saturating_mul(k);
    let chunks = if flops < MIN_PARALLEL_FLOPS { 1 } else { (parallel::num_threads() * 2).min(o_dim.div_ceil(8)) };
    let dst = SendPtr(out.as_mut_ptr());
    let out_len = out.len();
    parallel::for_each_chunk(o_dim, chunks, |o0, o1| {
        // SAFETY (both paths): a task writes only columns o0..o1 of the [n, o_dim] output, and
        // tasks get disjoint column ranges, so no element is written twice concurrently.
        if n <= DOT_MAX_ROWS || k == 0 {
            let mut row = vec![0.0f32; k];
            for o in o0..o1 {
                let b = bias.map_or(0.0, |b| b[o]);
                let put = |s: usize, v: f32| {
                    let idx = s * o_dim + o;
                    assert!(idx < out_len);
                    unsafe { *dst.get().add(idx) = v + b };
                };
                // Fused on x86: the bytes widen in registers and the row is read once (b1 784->512:
                // 0.058 -> 0.033 ms). On wasm32 simd128 the widening loop measured 2.4x slower than
                // dequantize-then-dot (0.235 vs 0.099 ms), so wasm keeps the two passes.
                if w.format == Format::Int8 && !cfg!(target_arch = "wasm32") {
                    let q = &w.q[o * k..(o + 1) * k];
                    (0..n).for_each(|s| put(s, dot_i8(&x[s * k..(s + 1) * k], q) * w.scales[o]));
                } else {
                    w.expand(o, &mut row);
                    (0..n).for_each(|s| put(s, dot(&x[s * k..(s + 1) * k], &row)));
                }
            }
            return;
        }
        let mut tile = vec![0.0f32; TILE_ROWS.min(o1 - o0) * k];
        for t0 in (o0..o1).step_by(TILE_ROWS) {
            let width = TILE_ROWS.min(o1 - t0);
            for (r, row) in tile.chunks_mut(k).take(width).enumerate() {
                w.expand(t0 + r, row);
            }
            assert!((n - 1) * o_dim + t0 + width <= out_len && x.len() >= n * k && tile.len() >= width * k);
            // out[:, t0..t0+width] = x [n, k] @ tileᵀ [k, width]; tileᵀ is read through strides.
            unsafe { tile_gemm(n, width, k, x, &tile, dst.get().add(t0), o_dim) };
            if let Some(b) = bias {
                for s in 0..n {
                    for j in 0..width {
                        unsafe { *dst.get().add(s * o_dim + t0 + j) += b[t0 + j] };
                    }
                }
            }
        }
    });
}

/// dst[s * dst_stride + j] = Σ_i x[s, i] · tile[j, i] for s < n, j < width (through gemm_call, so
/// the same code runs natively and on wasm32).
///
/// # Safety
/// `dst` must be valid for writes at every `s * dst_stride + j`; x holds n·k and tile width·k floats.
unsafe fn tile_gemm(n: usize, width: usize, k: usize, x: &[f32], tile: &[f32], dst: *mut f32, dst_stride: usize) {
    crate::gemm_call::gemm(
        n, width, k,
        dst, dst_stride as isize, 1, false,
        x.as_ptr(), k as isize, 1,
        tile.as_ptr(), 1, k as isize,
        crate::gemm_call::Parallelism::None,
    );
}

multiversion! {
    /// Dot product with 16 independent accumulators (vectorizes; see reduce.rs sum_block).
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ta, tb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..16 {
                acc[i] += x[i] * y[i];
            }
        }
        let mut s = 0.0;
        for (x, y) in ta.iter().zip(tb) {
            s += x * y;
        }
        acc.iter().sum::<f32>() + s
    }
}

multiversion! {
    /// Dot product of floats with int8 values (widened in registers), 16 accumulators.
    fn dot_i8(a: &[f32], q: &[i8]) -> f32 {
        let mut acc = [0.0f32; 16];
        let (ca, cq) = (a.chunks_exact(16), q.chunks_exact(16));
        let (ta, tq) = (ca.remainder(), cq.remainder());
        for (x, y) in ca.zip(cq) {
            for i in 0..16 {
                acc[i] += x[i] * y[i] as f32;
            }
        }
        let mut s = 0.0;
        for (x, &y) in ta.iter().zip(tq) {
            s += x * y as f32;
        }
        acc.iter().sum::<f32>() + s
    }
}
