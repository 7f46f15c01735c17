//! x · Wᵀ + b on quantized weights: per-row dots for a few input rows, tiles of expanded rows
//! through the GEMM for many.

use crate::device::cpu::quant::rows::RowSource;
use super::{bias_values, checked_weights, refuse_gradients, Format};
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::checked_numel;
use crate::multiversion;
use crate::parallel::{self, SendPtr};
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;

/// Up to this many input rows, each weight row is dequantized once into an L1-sized scratch and
/// dotted with every input row; above it a tile of rows goes through the GEMM, whose register
/// blocking wins once the tile is reused by enough inputs (measured: examples/quantize-mnist.mjs).
const DOT_MAX_ROWS: usize = 4;
/// Below this many multiply-adds the op runs on one thread (as matmul.rs).
const MIN_PARALLEL_FLOPS: usize = 96 * 96 * 96;

/// x · Wᵀ + b with int8 weights. x [..., I] float32, q [O, I] int8, scales [O], bias [O] or
/// None -> [..., O]. Inference-only: errors if a gradient would be needed (see module comment).
pub fn linear_q8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::device::cpu_only("linearQ8", &[Some(x), Some(q), Some(scales), bias])?;
    linear(x, q, scales, bias, Format::Int8, false)
}

/// As `linear_q8`, with the input quantized too: each row of x to int8 with scale max|row| / 127,
/// products summed exactly in i32 (w8a8.rs). Faster than float; the result carries the input's
/// rounding as well as the weights'.
pub fn linear_w8a8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::device::cpu_only("linearW8A8", &[Some(x), Some(q), Some(scales), bias])?;
    linear(x, q, scales, bias, Format::Int8, true)
}

/// x · Wᵀ + b with int4 weights. x [..., I] float32, packed [O, ceil(I/2)] int8,
/// scales [O, ceil(I/block)], bias [O] or None -> [..., O]. Inference-only.
pub fn linear_q4(x: &Tensor, packed: &Tensor, scales: &Tensor, bias: Option<&Tensor>, block: usize) -> Result<Tensor> {
    crate::device::cpu_only("linearQ4", &[Some(x), Some(packed), Some(scales), bias])?;
    linear(x, packed, scales, bias, Format::int4("linearQ4", block)?, false)
}

fn linear(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, format: Format, int8_input: bool) -> Result<Tensor> {
    let op = match (format, int8_input) {
        (_, true) => "linearW8A8",
        (Format::Int8, false) => "linearQ8",
        _ => "linearQ4",
    };
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
    refuse_gradients(op, x, &[Some(&scales), bias])?;
    let x = x.materialize()?;
    let rows = x.numel() / in_features.max(1);
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(out_features);
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &out_shape)?)?;
    let bias = bias_values(op, bias)?;
    let weights = RowSource {
        format,
        q: q.contiguous_slice::<i8>().unwrap(),
        scales: scales.contiguous_slice::<f32>().unwrap(),
        in_features,
    };
    if rows > 0 && out_features > 0 && int8_input {
        crate::device::cpu::quant::w8a8::linear(x.contiguous_slice::<f32>().unwrap(), rows, in_features, weights.q, weights.scales, bias.as_deref(), &mut out);
    } else if rows > 0 && out_features > 0 {
        linear_kernel(x.contiguous_slice::<f32>().unwrap(), rows, &weights, bias.as_deref(), &mut out, out_features);
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &out_shape))
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
                // dequantize-then-dot (0.235 vs 0.099 ms), so wasm keeps the two passes. int4 fused
                // likewise (b1 784->512: 0.083 -> 0.061 ms; an interleaving expand loop was slower).
                let native = !cfg!(target_arch = "wasm32");
                if w.format == Format::Int8 && native {
                    let q = &w.q[o * k..(o + 1) * k];
                    (0..n).for_each(|s| put(s, dot_i8(&x[s * k..(s + 1) * k], q) * w.scales[o]));
                } else if let (Format::Int4 { block }, true) = (w.format, native && block_is_bytes(w.format)) {
                    let (row_bytes, row_scales) = w.format.row_sizes(k);
                    let (q, scales) = (&w.q[o * row_bytes..(o + 1) * row_bytes], &w.scales[o * row_scales..(o + 1) * row_scales]);
                    (0..n).for_each(|s| put(s, dot_i4(&x[s * k..(s + 1) * k], q, scales, block)));
                } else {
                    w.expand(o, &mut row);
                    (0..n).for_each(|s| put(s, dot(&x[s * k..(s + 1) * k], &row)));
                }
            }
            return;
        }
        let mut tile = vec![0.0f32; w.tile_len(o1 - o0)];
        w.for_each_tile(o0..o1, &mut tile, |t0, width, tile| {
            assert!((n - 1) * o_dim + t0 + width <= out_len && x.len() >= n * k && tile.len() >= width * k);
            // out[:, t0..t0+width] = x [n, k] @ tileᵀ [k, width]; tileᵀ is read through strides.
            unsafe { tile_gemm(n, width, k, x, tile, dst.get().add(t0), o_dim) };
            if let Some(b) = bias {
                for s in 0..n {
                    for j in 0..width {
                        unsafe { *dst.get().add(s * o_dim + t0 + j) += b[t0 + j] };
                    }
                }
            }
        });
    });
}

/// dst[s * dst_stride + j] = Σ_i x[s, i] · tile[j, i] for s < n, j < width (through gemm_call, so
/// the same code runs natively and on wasm32).
///
/// # Safety
/// `dst` must be valid for writes at every `s * dst_stride + j`; x holds n·k and tile width·k floats.
unsafe fn tile_gemm(n: usize, width: usize, k: usize, x: &[f32], tile: &[f32], dst: *mut f32, dst_stride: usize) {
    crate::device::cpu::gemm_call::gemm(
        n, width, k,
        dst, dst_stride as isize, 1, false,
        x.as_ptr(), k as isize, 1,
        tile.as_ptr(), 1, k as isize,
        crate::device::cpu::gemm_call::Parallelism::None,
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

/// An int4 block of a multiple of 16 weights: whole runs of 8 bytes, which `dot_i4` widens at once.
fn block_is_bytes(format: Format) -> bool {
    matches!(format, Format::Int4 { block } if block % 16 == 0)
}

multiversion! {
    /// Dot product of floats with an int4 row (blocks of a multiple of 16): 8 bytes give 16
    /// weights, low nibbles against the even inputs and high ones against the odd, each block's
    /// scale folded in before accumulating so no per-block horizontal sum is needed.
    fn dot_i4(x: &[f32], q: &[i8], scales: &[f32], block: usize) -> f32 {
        let mut acc = [0.0f32; 8];
        let mut tail = 0.0f32;
        for (b, xs) in x.chunks(block).enumerate() {
            let s = scales[b];
            let bytes = &q[b * block / 2..];
            let whole = xs.len() / 16;
            for (xx, src) in xs.chunks_exact(16).zip(bytes[..whole * 8].chunks_exact(8)) {
                for i in 0..8 {
                    // Shifting left then arithmetic right sign-extends the low nibble.
                    let (lo, hi) = (((src[i] << 4) >> 4) as f32, (src[i] >> 4) as f32);
                    acc[i] += s * (xx[2 * i] * lo + xx[2 * i + 1] * hi);
                }
            }
            for (i, &v) in xs[whole * 16..].iter().enumerate() {
                let byte = bytes[whole * 8 + i / 2];
                let nibble = if i % 2 == 0 { (byte << 4) >> 4 } else { byte >> 4 };
                tail += s * v * nibble as f32;
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}
