//! The weight-only quantized Linear (`linear_q8`, `linear_q4`): per-row dots for a few input rows,
//! tiles of expanded rows through the float GEMM for many.

use super::nibbles;
use super::rows::RowSource;
use crate::multiversion;
use crate::params::quant::Format;
use crate::parallel::{self, SendPtr};

/// Up to this many input rows, each weight row is dequantized once into an L1-sized scratch and
/// dotted with every input row; above it a tile of rows goes through the GEMM, whose register
/// blocking wins once the tile is reused by enough inputs (measured: examples/quantize-mnist.mjs).
pub(crate) const DOT_MAX_ROWS: usize = 4;
/// The row-dot path (a few input rows) splits over threads from this many weights. A batch-1
/// 784 -> 512 (401k weights) stays on one thread: with the vectorized kernels it takes about
/// 25 us, and on the loaded 2-core machine two threads measured no faster (int4 25.5 vs 27 us).
const DOT_PARALLEL_WEIGHTS: usize = 1 << 20;

/// out[n, o] = x[n, :] · W[o, :] + bias[o], output rows O split across threads.
pub(crate) fn forward(x: &[f32], n: usize, w: &RowSource, bias: Option<&[f32]>, out: &mut [f32], o_dim: usize) {
    let k = w.in_features;
    let flops = n.saturating_mul(o_dim).saturating_mul(k);
    let small = if n <= DOT_MAX_ROWS { o_dim.saturating_mul(k) < DOT_PARALLEL_WEIGHTS } else { flops < crate::parallel::MIN_PARALLEL_FLOPS };
    let chunks = if small { 1 } else { (parallel::num_threads() * 2).min(o_dim.div_ceil(8)) };
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
                // dequantize-then-dot (0.235 vs 0.099 ms), so wasm keeps the two passes. int4 reads
                // the runs layout built once with the weight (nibbles.rs) where the CPU has AVX2 or
                // AVX-512, else the portable fused loop on the stored bytes.
                let native = !cfg!(target_arch = "wasm32");
                if w.format == Format::Int8 && native {
                    let q = &w.q[o * k..(o + 1) * k];
                    (0..n).for_each(|s| put(s, dot_i8(&x[s * k..(s + 1) * k], q) * w.scales[o]));
                } else if let (Format::Int4 { block }, Some(runs)) = (w.format, w.int4_runs) {
                    let scales = &w.scales[o * k.div_ceil(block)..(o + 1) * k.div_ceil(block)];
                    (0..n).for_each(|s| put(s, nibbles::dot(&x[s * k..(s + 1) * k], runs.row(o), scales, block)));
                } else if let (Format::Int4 { block }, true) = (w.format, native && block_is_bytes(w.format)) {
                    let (row_bytes, row_scales) = w.format.row_sizes(k);
                    let (q, scales) = (&w.q[o * row_bytes..(o + 1) * row_bytes], &w.scales[o * row_scales..(o + 1) * row_scales]);
                    (0..n).for_each(|s| put(s, dot_i4_portable(&x[s * k..(s + 1) * k], q, scales, block)));
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

/// An int4 block of a multiple of 16 weights: whole runs of 8 bytes, which `dot_i4_portable` widens at once.
fn block_is_bytes(format: Format) -> bool {
    matches!(format, Format::Int4 { block } if block % 16 == 0)
}

multiversion! {
    /// Dot product of floats with an int4 row (blocks of a multiple of 16): 8 bytes give 16
    /// weights, low nibbles against the even inputs and high ones against the odd, each block's
    /// scale folded in before accumulating so no per-block horizontal sum is needed.
    fn dot_i4_portable(x: &[f32], q: &[i8], scales: &[f32], block: usize) -> f32 {
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
