//! The weight-only quantized Linear (`linear_q8`, `linear_q4`): per-row dots for a few input rows,
//! tiles of expanded rows through the float GEMM for many.

use super::rows::RowSource;
use crate::multiversion;
use crate::params::quant::Format;
use crate::parallel::{self, SendPtr};

/// Up to this many input rows, each weight row is dequantized once into an L1-sized scratch and
/// dotted with every input row; above it a tile of rows goes through the GEMM, whose register
/// blocking wins once the tile is reused by enough inputs (measured: examples/quantize-mnist.mjs).
const DOT_MAX_ROWS: usize = 4;
/// Below this many multiply-adds the op runs on one thread (as matmul.rs).
const MIN_PARALLEL_FLOPS: usize = 96 * 96 * 96;
/// The row-dot path (a few input rows) splits over threads from this many weights: it unpacks
/// every weight for a handful of multiply-adds, so a batch-1 784 -> 512 (401k weights) already
/// pays for the fork.
const DOT_PARALLEL_WEIGHTS: usize = 1 << 17;

/// out[n, o] = x[n, :] · W[o, :] + bias[o], output rows O split across threads.
pub(crate) fn forward(x: &[f32], n: usize, w: &RowSource, bias: Option<&[f32]>, out: &mut [f32], o_dim: usize) {
    let k = w.in_features;
    let flops = n.saturating_mul(o_dim).saturating_mul(k);
    let small = if n <= DOT_MAX_ROWS { o_dim.saturating_mul(k) < DOT_PARALLEL_WEIGHTS } else { flops < MIN_PARALLEL_FLOPS };
    let chunks = if small { 1 } else { (parallel::num_threads() * 2).min(o_dim.div_ceil(8)) };
    let dst = SendPtr(out.as_mut_ptr());
    let out_len = out.len();
    // The AVX-512 int4 dot reads each run of 32 inputs as its 16 even then its 16 odd values
    // (x86::dot_i4): rearranged here once per call, not per weight row.
    let x_i4 = match w.format {
        Format::Int4 { block } if n <= DOT_MAX_ROWS && i4_avx512(block) => Some(evens_then_odds(&x[..n * k], k)),
        _ => None,
    };
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
                    let x = x_i4.as_deref().unwrap_or(x);
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

/// Whether `dot_i4` takes the AVX-512 kernel, which wants its inputs from `evens_then_odds`.
fn i4_avx512(block: usize) -> bool {
    cfg!(target_arch = "x86_64") && block % 32 == 0 && crate::simd::level() == crate::simd::SimdLevel::Avx512
}

/// Rows of `k` inputs with each whole run of 32 rearranged as its 16 even values then its 16 odd
/// ones (the order of a run's low then high nibbles); a shorter tail stays as it is.
fn evens_then_odds(x: &[f32], k: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    for (src, dst) in x.chunks(k.max(1)).zip(out.chunks_mut(k.max(1))) {
        for (s, d) in src.chunks_exact(32).zip(dst.chunks_exact_mut(32)) {
            for j in 0..16 {
                d[j] = s[2 * j];
                d[16 + j] = s[2 * j + 1];
            }
        }
    }
    out
}

/// Dot product of inputs with an int4 row (blocks of a multiple of 16): with `i4_avx512(block)`
/// the AVX-512 kernel on inputs from `evens_then_odds`, else the portable loop on plain inputs.
fn dot_i4(x: &[f32], q: &[i8], scales: &[f32], block: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if i4_avx512(block) {
        // SAFETY: the level is only ever what the CPU reports (avx512f and avx512vl included).
        return unsafe { x86::dot_i4(x, q, scales, block) };
    }
    dot_i4_portable(x, q, scales, block)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 32 weights per step: 16 bytes widened to 16 lanes (one byte each); `vpermps` looks each
    /// lane's low 4 bits up in a 16-entry table of the block's dequantized values (-8..7 times
    /// its scale), once for the low nibbles (the run's even weights) and once after a shift by 4
    /// for the high ones (the odd weights), against the inputs `evens_then_odds` arranged to
    /// match. No int -> float conversion, and the weights round as `dequantize_row`'s. A run of
    /// 16 left at the end of a block (8 bytes, inputs in plain order) duplicates each byte into
    /// two lanes and shifts the odd lanes instead; fewer than 16 go one by one.
    ///
    /// # Safety
    /// The CPU must have avx512f; `block` % 32 == 0, q holds ceil(x.len() / 2) bytes and scales
    /// ceil(x.len() / block) values.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub(super) unsafe fn dot_i4(x: &[f32], q: &[i8], scales: &[f32], block: usize) -> f32 {
        let k = x.len();
        assert!(block % 32 == 0 && q.len() >= k.div_ceil(2) && scales.len() >= k.div_ceil(block));
        let table = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0);
        let odd_lanes = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
        let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut tail = 0.0f32;
        let (mut start, mut b) = (0, 0);
        while start < k {
            let len = block.min(k - start);
            let values = _mm512_mul_ps(table, _mm512_set1_ps(scales[b]));
            let mut at = start;
            while at + 32 <= start + len {
                let bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(q.as_ptr().add(at / 2) as *const __m128i));
                even = _mm512_fmadd_ps(_mm512_permutexvar_ps(bytes, values), _mm512_loadu_ps(x.as_ptr().add(at)), even);
                let high = _mm512_srli_epi32::<4>(bytes);
                odd = _mm512_fmadd_ps(_mm512_permutexvar_ps(high, values), _mm512_loadu_ps(x.as_ptr().add(at + 16)), odd);
                at += 32;
            }
            if at + 16 <= start + len {
                let bytes = _mm_loadl_epi64(q.as_ptr().add(at / 2) as *const __m128i);
                let lanes = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(bytes, bytes)), odd_lanes);
                even = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes, values), _mm512_loadu_ps(x.as_ptr().add(at)), even);
                at += 16;
            }
            for i in at..start + len {
                let byte = q[i / 2];
                let nibble = if i % 2 == 0 { (byte << 4) >> 4 } else { byte >> 4 };
                tail += nibble as f32 * scales[b] * x[i];
            }
            start += len;
            b += 1;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(even, odd)) + tail
    }
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
