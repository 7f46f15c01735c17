//! int4 weight rows re-laid once for vector unpacking: the few-row `linear_q4` path on x86.
//!
//! The stored format puts weight 2j in the low nibble of byte j and 2j+1 in the high one, so
//! unpacking 16 consecutive weights takes a widening shuffle and an interleave (or inputs
//! rearranged to match, per call). Here each row is cut into runs of 128 weights, 64 bytes each,
//! read as sixteen 32-bit words: nibble j of word i (bits 4j..4j+3) is weight 16j + i of the run.
//! One 64-byte load gives 8 vectors of 16 consecutive weights, each one shift away:
//! - AVX-512: `vpermps` reads only the low 4 bits of each index lane, so `words >> 4j` indexes a
//!   16-entry table of the block's dequantized values (q · scale for q = -8..7) as it is: a shift
//!   and a permute per 16 weights, no widening, no int -> float conversion.
//! - AVX2 (8 lanes: words 8h..8h+7 hold weights 16j + 8h + i): shift the nibble to the top and
//!   back (arithmetic) to sign-extend it, convert, times the block's scale.
//!
//! Either way a weight's value is `q as f32 * scale`, as `dequantize_row` computes it. Rows end
//! in zero nibbles up to a whole run; the inputs past the row are read through a mask (as 0).
//! Built once per weight tensor (`Tensor::derived`, kept with the weight), never per call.

use std::sync::Arc;

use crate::error::Result;
use crate::tensor::Tensor;

/// Weights per run (64 bytes).
const RUN: usize = 128;
/// 32-bit words per run.
const WORDS: usize = RUN / 8;

/// int4 rows in runs (module comment), `runs` runs per row.
pub(crate) struct Int4Runs {
    words: Vec<u32>,
    runs: usize,
}

impl Int4Runs {
    /// Re-lays `rows` stored rows of k weights (packed [rows, ceil(k/2)]).
    pub fn new(packed: &[i8], rows: usize, k: usize) -> Int4Runs {
        let (runs, row_bytes) = (k.div_ceil(RUN), k.div_ceil(2));
        let mut words = vec![0u32; rows * runs * WORDS];
        for (src, dst) in packed.chunks_exact(row_bytes.max(1)).zip(words.chunks_exact_mut((runs * WORDS).max(1))).take(rows) {
            for i in 0..k {
                let byte = src[i / 2] as u8;
                let nibble = if i % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                let (run, e) = (i / RUN, i % RUN);
                dst[run * WORDS + e % 16] |= (nibble as u32) << (4 * (e / 16));
            }
        }
        Int4Runs { words, runs }
    }

    /// Row `o`'s words.
    pub fn row(&self, o: usize) -> &[u32] {
        &self.words[o * self.runs * WORDS..(o + 1) * self.runs * WORDS]
    }
}

/// Whether this CPU has a kernel for the runs layout with blocks of `block` (each vector of 16,
/// or 8, consecutive weights must lie in one block).
pub(crate) fn applies(block: usize) -> bool {
    use crate::simd::{level, SimdLevel};
    cfg!(target_arch = "x86_64") && block % 16 == 0 && matches!(level(), SimdLevel::Avx512 | SimdLevel::Avx2Fma)
}

/// The runs of an int4 weight tensor (packed [rows, ceil(k/2)]), built on first use and kept with
/// it; None where no kernel reads them (`applies`).
pub(crate) fn of(packed: &Tensor, rows: usize, k: usize, block: usize) -> Result<Option<Arc<Int4Runs>>> {
    if !applies(block) {
        return Ok(None);
    }
    let q = packed.cpu_slice::<i8>("linearQ4")?;
    packed.derived(&[k], || {
        let runs = Int4Runs::new(q, rows, k);
        let bytes = runs.words.len() * 4;
        Ok((runs, bytes))
    }).map(Some)
}

/// Σ x[i] · w[i] for one row of k = x.len() weights in runs (`row` from `Int4Runs::row`), with
/// `scales` its blocks' scales. Needs `applies(block)`.
pub(crate) fn dot(x: &[f32], row: &[u32], scales: &[f32], block: usize) -> f32 {
    let k = x.len();
    if k == 0 {
        return 0.0;
    }
    assert!(row.len() >= k.div_ceil(RUN) * WORDS && scales.len() >= k.div_ceil(block) && block % 16 == 0, "int4 runs: row out of bounds");
    #[cfg(target_arch = "x86_64")]
    {
        use crate::simd::{level, SimdLevel};
        // SAFETY: the level is only ever what the CPU reports; the reads are bounded above.
        match level() {
            SimdLevel::Avx512 => return unsafe { x86::dot_avx512(x, row, scales, block) },
            SimdLevel::Avx2Fma => return unsafe { x86::dot_avx2(x, row, scales, block) },
            SimdLevel::Scalar => {}
        }
    }
    // Only reached if the level was lowered after the runs were built (tests force levels).
    (0..k)
        .map(|i| {
            let nibble = (row[i / RUN * WORDS + i % 16] >> (4 * (i % RUN / 16))) & 0x0f;
            x[i] * (((nibble as i32) << 28 >> 28) as f32 * scales[i / block])
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{RUN, WORDS};
    use std::arch::x86_64::*;

    /// # Safety
    /// avx512f; row holds ceil(k/128)·16 words, scales ceil(k/block) values, block % 16 == 0.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_avx512(x: &[f32], row: &[u32], scales: &[f32], block: usize) -> f32 {
        let k = x.len();
        // The nibbles' two's-complement values in index order.
        let base = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0);
        // Four chains hide the FMA latency; they must stay registers, so the 8 steps of a run
        // are written out, and the block is tracked by counting down, not by dividing per step.
        // (A loop indexing an array of accumulators, dividing per step, measured 51 us against
        // 25 us for this form on a batch-1 784 -> 512.)
        let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
        let (mut b, mut left) = (0usize, block);
        let mut table = _mm512_mul_ps(base, _mm512_set1_ps(scales[0]));
        macro_rules! step {
            ($acc:ident, $index:expr, $xv:expr) => {
                if left == 0 {
                    b += 1;
                    left = block;
                    table = _mm512_mul_ps(base, _mm512_set1_ps(scales[b]));
                }
                $acc = _mm512_fmadd_ps(_mm512_permutexvar_ps($index, table), $xv, $acc);
                left -= 16;
            };
        }
        let whole = k / RUN;
        for run in 0..whole {
            let w = _mm512_loadu_si512(row.as_ptr().add(run * WORDS) as *const _);
            let p = x.as_ptr().add(run * RUN);
            step!(a0, w, _mm512_loadu_ps(p));
            step!(a1, _mm512_srli_epi32::<4>(w), _mm512_loadu_ps(p.add(16)));
            step!(a2, _mm512_srli_epi32::<8>(w), _mm512_loadu_ps(p.add(32)));
            step!(a3, _mm512_srli_epi32::<12>(w), _mm512_loadu_ps(p.add(48)));
            step!(a0, _mm512_srli_epi32::<16>(w), _mm512_loadu_ps(p.add(64)));
            step!(a1, _mm512_srli_epi32::<20>(w), _mm512_loadu_ps(p.add(80)));
            step!(a2, _mm512_srli_epi32::<24>(w), _mm512_loadu_ps(p.add(96)));
            step!(a3, _mm512_srli_epi32::<28>(w), _mm512_loadu_ps(p.add(112)));
        }
        // The last, partial run: its inputs through a mask (zeros past k meet zero nibbles).
        if whole * RUN < k {
            let w = _mm512_loadu_si512(row.as_ptr().add(whole * WORDS) as *const _);
            let mut e0 = whole * RUN;
            let mut shift = 0;
            while e0 < k {
                let n = (k - e0).min(16);
                let xv = _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, x.as_ptr().add(e0));
                step!(a0, _mm512_srlv_epi32(w, _mm512_set1_epi32(shift)), xv);
                e0 += 16;
                shift += 4;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)))
    }

    /// # Safety
    /// avx2 and fma; as `dot_avx512` for the memory.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(x: &[f32], row: &[u32], scales: &[f32], block: usize) -> f32 {
        let k = x.len();
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut b, mut left) = (0usize, block);
        let mut scale = _mm256_set1_ps(scales[0]);
        // 8 weights: nibble `shift / 4` of each word moved to bits 28..31, then an arithmetic
        // shift back sign-extends it; converted, times the block's scale (as dequantize_row).
        macro_rules! step {
            ($acc:ident, $words:expr, $up:expr, $xv:expr) => {
                if left == 0 {
                    b += 1;
                    left = block;
                    scale = _mm256_set1_ps(scales[b]);
                }
                let q = _mm256_srai_epi32::<28>(_mm256_sllv_epi32($words, _mm256_set1_epi32($up)));
                $acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q), scale), $xv, $acc);
                left -= 8;
            };
        }
        let mut e0 = 0;
        for run in 0..k.div_ceil(RUN) {
            // Words 0..8 hold weights 16j + 0..8, words 8..16 weights 16j + 8..16.
            let lo = _mm256_loadu_si256(row.as_ptr().add(run * WORDS) as *const __m256i);
            let hi = _mm256_loadu_si256(row.as_ptr().add(run * WORDS + 8) as *const __m256i);
            let mut up = 28;
            while up >= 0 && e0 < k {
                if e0 + 16 <= k {
                    step!(a0, lo, up, _mm256_loadu_ps(x.as_ptr().add(e0)));
                    step!(a1, hi, up, _mm256_loadu_ps(x.as_ptr().add(e0 + 8)));
                } else {
                    // Lanes below `k - from` load; the rest read as 0 (and meet zero nibbles).
                    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                    let first = _mm256_cmpgt_epi32(_mm256_set1_epi32((k - e0).min(8) as i32), lane);
                    step!(a2, lo, up, _mm256_maskload_ps(x.as_ptr().add(e0), first));
                    let xv = if e0 + 8 < k {
                        _mm256_maskload_ps(x.as_ptr().add(e0 + 8), _mm256_cmpgt_epi32(_mm256_set1_epi32((k - e0 - 8) as i32), lane))
                    } else {
                        _mm256_setzero_ps()
                    };
                    step!(a3, hi, up, xv);
                }
                e0 += 16;
                up -= 4;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu::quant::rows::dequantize_row;
    use crate::params::quant::Format;
    use crate::simd::{level, set_level, SimdLevel};

    /// Random stored int4 rows (every nibble value) and scales.
    fn weights(rows: usize, k: usize, block: usize, seed: u64) -> (Vec<i8>, Vec<f32>) {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut packed: Vec<i8> = (0..rows * k.div_ceil(2)).map(|_| next() as i8).collect();
        if k % 2 == 1 {
            // An odd row ends in a zero high nibble (the stored format).
            for r in 0..rows {
                packed[(r + 1) * k.div_ceil(2) - 1] &= 0x0f;
            }
        }
        let scales = (0..rows * k.div_ceil(block)).map(|_| (next() % 1000) as f32 / 997.0 + 0.01).collect();
        (packed, scales)
    }

    #[test]
    fn every_x86_kernel_matches_the_dequantized_dot() {
        let best = level();
        for forced in [SimdLevel::Avx512, SimdLevel::Avx2Fma] {
            if set_level(forced) != forced {
                continue;
            }
            for &(k, block) in &[(784usize, 32usize), (128, 16), (1, 16), (17, 16), (100, 48), (255, 64), (1000, 32), (130, 128)] {
                let rows = 3;
                let (packed, scales) = weights(rows, k, block, k as u64 * 31 + block as u64);
                let runs = Int4Runs::new(&packed, rows, k);
                let x: Vec<f32> = (0..k).map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0).collect();
                let (row_bytes, row_scales) = Format::Int4 { block }.row_sizes(k);
                for o in 0..rows {
                    let s = &scales[o * row_scales..(o + 1) * row_scales];
                    let mut w = vec![0f32; k];
                    dequantize_row(Format::Int4 { block }, &packed[o * row_bytes..(o + 1) * row_bytes], s, &mut w);
                    let want: f64 = x.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let bound: f64 = x.iter().zip(&w).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum::<f64>() * 1e-6 + 1e-6;
                    let got = dot(&x, runs.row(o), s, block) as f64;
                    assert!((got - want).abs() <= bound, "{forced:?} k {k} block {block} row {o}: {got} vs {want}");
                }
            }
        }
        set_level(best);
    }
}
