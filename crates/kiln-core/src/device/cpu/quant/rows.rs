//! Expanding quantized rows into float32, one row or a bounded tile of rows at a time: the one
//! place the linear and conv kernels get their weights from.

use crate::params::quant::Format;
use crate::multiversion;
use std::ops::Range;

/// Weight rows expanded per GEMM call: 64 rows of 784 floats (200 KB) stay in L2, and a conv's
/// 64 filters of 3·3·64 taps (147 KB) too.
pub(crate) const TILE_ROWS: usize = 64;

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
pub(crate) fn dequantize_row(format: Format, q: &[i8], scales: &[f32], out: &mut [f32]) {
    match format {
        Format::Int8 => dequantize_row_int8(q, scales[0], out),
        // SAFETY: the level is only ever what the CPU reports.
        #[cfg(target_arch = "x86_64")]
        Format::Int4 { block } if block % 16 == 0 && crate::simd::level() == crate::simd::SimdLevel::Avx512 => unsafe { x86::dequantize_int4(q, scales, block, out) },
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The int4 row expansion with AVX-512, 16 weights (8 bytes) per step: each byte widened
    /// into two lanes, the odd lanes shifted right by 4, so every lane's low 4 bits are its
    /// nibble; `vpermps` (which reads only those bits) looks them up in the block's table of
    /// q · scale for q = 0..7, -8..-1, the values the scalar expansion computes.
    ///
    /// # Safety
    /// avx512f; block % 16 == 0; q holds ceil(out.len() / 2) bytes, scales ceil(out.len() / block).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dequantize_int4(q: &[i8], scales: &[f32], block: usize, out: &mut [f32]) {
        let k = out.len();
        if k == 0 {
            return;
        }
        assert!(block % 16 == 0 && q.len() >= k.div_ceil(2) && scales.len() >= k.div_ceil(block), "int4 expand: row out of bounds");
        let base = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0);
        let odd_lanes = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
        // The block is tracked by counting down (a division per step would cost more than it).
        let (mut b, mut left) = (0usize, block);
        let mut table = _mm512_mul_ps(base, _mm512_set1_ps(scales[0]));
        let whole = k / 16 * 16;
        let mut i = 0;
        while i < whole {
            if left == 0 {
                b += 1;
                left = block;
                table = _mm512_mul_ps(base, _mm512_set1_ps(scales[b]));
            }
            left -= 16;
            let bytes = _mm_loadl_epi64(q.as_ptr().add(i / 2) as *const __m128i);
            let lanes = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(bytes, bytes)), odd_lanes);
            _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_permutexvar_ps(lanes, table));
            i += 16;
        }
        for (i, o) in out.iter_mut().enumerate().skip(whole) {
            let byte = q[i / 2];
            let v = if i % 2 == 0 { (byte << 4) >> 4 } else { byte >> 4 };
            *o = v as f32 * scales[i / block];
        }
    }
}

/// Quantized weight rows, expanded on demand.
pub(crate) struct RowSource<'a> {
    pub format: Format,
    pub q: &'a [i8],
    pub scales: &'a [f32],
    pub in_features: usize,
    /// The same int4 rows re-laid for the x86 kernels (nibbles.rs), when built.
    pub int4_runs: Option<&'a super::nibbles::Int4Runs>,
}

impl RowSource<'_> {
    /// Expands row `row` into `out` (in_features floats).
    pub fn expand(&self, row: usize, out: &mut [f32]) {
        let (row_bytes, row_scales) = self.format.row_sizes(self.in_features);
        dequantize_row(self.format, &self.q[row * row_bytes..(row + 1) * row_bytes], &self.scales[row * row_scales..(row + 1) * row_scales], out);
    }

    /// Floats of a tile for up to `rows` rows (at most TILE_ROWS of them).
    pub fn tile_len(&self, rows: usize) -> usize {
        TILE_ROWS.min(rows) * self.in_features
    }

    /// Expands `rows` tile by tile into `tile` (whole rows, at most TILE_ROWS) and calls
    /// `f(first row, rows in the tile, tile [rows, in_features])` for each: the caller's GEMM
    /// consumes a tile before the next one overwrites it, so the weight is never whole in f32.
    pub fn for_each_tile(&self, rows: Range<usize>, tile: &mut [f32], mut f: impl FnMut(usize, usize, &[f32])) {
        let k = self.in_features;
        let per_tile = if k == 0 { TILE_ROWS } else { (tile.len() / k).min(TILE_ROWS) };
        assert!(per_tile > 0 || rows.is_empty(), "quant: tile smaller than one row");
        for t0 in rows.clone().step_by(per_tile.max(1)) {
            let width = per_tile.min(rows.end - t0);
            for r in 0..width {
                self.expand(t0 + r, &mut tile[r * k..(r + 1) * k]);
            }
            f(t0, width, &tile[..width * k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{level, set_level, SimdLevel};

    /// Every level's expansion against the format's definition, one weight at a time.
    #[test]
    fn int4_expansion_matches_the_format_on_every_level() {
        let best = level();
        for forced in [SimdLevel::Avx512, SimdLevel::Avx2Fma, SimdLevel::Scalar] {
            set_level(forced);
            for &(k, block) in &[(784usize, 32usize), (100, 16), (33, 16), (15, 16), (70, 64), (45, 6), (29, 7)] {
                let q: Vec<i8> = (0..k.div_ceil(2)).map(|j| (j as u32).wrapping_mul(2_654_435_761).rotate_right(13) as i8).collect();
                let scales: Vec<f32> = (0..k.div_ceil(block)).map(|b| 0.25 + b as f32 * 0.125).collect();
                let mut got = vec![f32::NAN; k];
                dequantize_row(Format::Int4 { block }, &q, &scales, &mut got);
                for (i, &v) in got.iter().enumerate() {
                    let byte = q[i / 2] as u8;
                    let nibble = if i % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                    let value = if nibble >= 8 { nibble as i32 - 16 } else { nibble as i32 };
                    assert_eq!(v, value as f32 * scales[i / block], "{forced:?} k {k} block {block} at {i}");
                }
            }
        }
        set_level(best);
    }
}
