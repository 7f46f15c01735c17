//! Weight-only quantized filters (int8 per channel, int4 per block) for direct.rs's forward
//! tiles: the convolutions direct.rs serves in float32 (AVX-512, unit stride, one group, 8+
//! input channels) run the same kernel on quantized weights.
//!
//! Before, these ran im2col + GEMM with tiles of filters expanded per (image, band) (layers.rs's
//! `Tiles`), while float32 ran direct.rs: int4 at batch 1 measured 0.74x float32. Now:
//! - the stored rows are re-laid once per weight tensor (`Tensor::derived`, kept with it) into
//!   the order the tiles read: blocks of `mr` output channels, then tap, then the block's channels,
//!   still one byte (int8) or half a byte (int4) per weight;
//! - a worker expands one block at a time into its scratch as it reaches it (AVX-512: 16 weights,
//!   two taps of 8 channels, per step: widen, sign-extend, convert, times each lane's channel
//!   scale), so the float32 weight is never whole, and the expansion is a linear vector pass
//!   where float32 packs its weight per call with a scalar strided copy.
//!
//! Each weight is `q as f32 * scale`, as `dequantize_row` computes it, so results equal conv2d
//! on the dequantized filters up to summation order.

use std::sync::Arc;

use crate::device::cpu::conv::direct::{self, TileFilters};
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::params::quant::{Format, QuantWeights};
use crate::storage::try_zeroed;
use crate::tensor::Tensor;

/// A quantized weight's values in tile order (module comment), zeros past the last channel; int4
/// element e in the low nibble of byte e/2 when e is even. 16 bytes of slack at the end: the
/// vector expansion's last step may load past the last element.
struct TileBytes {
    bytes: Vec<u8>,
}

impl TileBytes {
    fn new(format: Format, q: &[i8], rows: usize, taps: usize, mr: usize) -> TileBytes {
        let elements = rows.div_ceil(mr) * taps * mr;
        let (row_bytes, _) = format.row_sizes(taps);
        let len = match format {
            Format::Int8 => elements,
            Format::Int4 { .. } => elements.div_ceil(2),
        };
        let mut bytes = vec![0u8; len + 16];
        for (o, row) in q.chunks_exact(row_bytes.max(1)).take(rows).enumerate() {
            for t in 0..taps {
                let e = ((o / mr) * taps + t) * mr + o % mr;
                match format {
                    Format::Int8 => bytes[e] = row[t] as u8,
                    Format::Int4 { .. } => bytes[e / 2] |= ((row[t / 2] as u8 >> (4 * (t % 2))) & 0x0f) << (4 * (e % 2)),
                }
            }
        }
        TileBytes { bytes }
    }

    /// Element e's stored integer.
    fn value(&self, format: Format, e: usize) -> i32 {
        match format {
            Format::Int8 => self.bytes[e] as i8 as i32,
            // Shifting the nibble to the top of a byte and back (arithmetic) sign-extends it.
            Format::Int4 { .. } => ((((self.bytes[e / 2] >> (4 * (e % 2))) << 4) as i8) >> 4) as i32,
        }
    }
}

/// One call's view of a quantized weight as direct.rs's `TileFilters`.
pub(crate) struct QuantTiles {
    laid: Arc<TileBytes>,
    format: Format,
    mr: usize,
    taps: usize,
    /// Scale blocks per row: 1 for int8 (a scale per channel), ceil(taps / block) for int4.
    scale_blocks: usize,
    /// Per tap, its scale block.
    tap_scale: Vec<usize>,
    /// [channel block][scale block][mr]: each lane's channel's scale (0 past the last channel).
    lane_scales: Vec<f32>,
}

impl QuantTiles {
    /// Weights `w` (stored `q`, `scales`) for the forward of `geo` on direct.rs's tiles, or None
    /// where direct.rs does not serve `geo`.
    fn of(geo: &Geometry, w: &QuantWeights, q: &Tensor, scales: &[f32], op: &str) -> Result<Option<QuantTiles>> {
        if !direct::applies(geo) {
            return Ok(None);
        }
        let (rows, taps, mr, format) = (geo.out_channels, w.in_features, direct::tile_rows(geo.out_channels), w.format);
        let stored = q.cpu_slice::<i8>(op)?;
        let code = match format {
            Format::Int8 => 8,
            Format::Int4 { .. } => 4,
        };
        let laid = q.derived(&[code, mr, taps], || {
            let laid = TileBytes::new(format, stored, rows, taps, mr);
            let bytes = laid.bytes.len();
            Ok((laid, bytes))
        })?;
        QuantTiles::new(laid, format, rows, taps, mr, scales, op).map(Some)
    }

    /// The call's view of `laid` (`rows` filters of `taps` weights) with `scales` as stored.
    fn new(laid: Arc<TileBytes>, format: Format, rows: usize, taps: usize, mr: usize, scales: &[f32], op: &str) -> Result<QuantTiles> {
        let (scale_blocks, block) = match format {
            Format::Int8 => (1, taps.max(1)),
            Format::Int4 { block } => (taps.div_ceil(block), block),
        };
        // Counted, not divided: a division per tap cost more than the rest of this loop.
        let mut tap_scale = Vec::with_capacity(taps);
        let (mut b, mut left) = (0, block);
        for _ in 0..taps {
            if left == 0 {
                b += 1;
                left = block;
            }
            tap_scale.push(b);
            left -= 1;
        }
        let mut lane_scales = try_zeroed::<f32>(op, rows.div_ceil(mr) * scale_blocks * mr)?;
        for o in 0..rows {
            for s in 0..scale_blocks {
                lane_scales[((o / mr) * scale_blocks + s) * mr + o % mr] = scales[o * scale_blocks + s];
            }
        }
        Ok(QuantTiles { laid, format, mr, taps, scale_blocks, tap_scale, lane_scales })
    }

    /// Block `block`'s filters into `out` (taps x mr floats), one weight at a time.
    fn expand_scalar(&self, block: usize, out: &mut [f32]) {
        let first = block * self.taps * self.mr;
        for (t, row) in out.chunks_exact_mut(self.mr).enumerate() {
            let scales = &self.lane_scales[(block * self.scale_blocks + self.tap_scale[t]) * self.mr..];
            for (r, o) in row.iter_mut().enumerate() {
                *o = self.laid.value(self.format, first + t * self.mr + r) as f32 * scales[r];
            }
        }
    }
}

impl TileFilters for QuantTiles {
    fn scratch_len(&self) -> usize {
        self.taps * self.mr
    }

    /// Expanded into `scratch` in `pack_filters` order: row stride 1, tap stride MR.
    fn block(&self, block: usize, scratch: &mut [f32]) -> (*const f32, usize, usize) {
        let out = &mut scratch[..self.taps * self.mr];
        if self.mr == 8 && crate::simd::level() == crate::simd::SimdLevel::Avx512 {
            // SAFETY: AVX-512 is present; expand8's bounds are those of `out`, the block's bytes
            // (with the slack) and its lane scales.
            unsafe { x86::expand8(self, block, out) };
        } else {
            self.expand_scalar(block, out);
        }
        (out.as_ptr(), 1, self.mr)
    }
}

/// The forward of `geo` on direct.rs's tiles with quantized filters, or None where direct.rs
/// does not serve `geo` (then layers.rs runs im2col + GEMM).
pub(crate) fn forward(geo: &Geometry, x: &[f32], w: &QuantWeights, q: &Tensor, scales: &[f32], bias: Option<&[f32]>, op: &str) -> Result<Option<Vec<f32>>> {
    match QuantTiles::of(geo, w, q, scales, op)? {
        Some(tiles) => direct::forward_with(geo, x, &tiles, bias, op).map(Some),
        None => Ok(None),
    }
}

mod x86 {
    use super::QuantTiles;
    use crate::params::quant::Format;
    use std::arch::x86_64::*;

    /// Block `block` of 8 channels into `out` (taps x 8 floats), 16 weights (taps t, t+1) per step.
    ///
    /// # Safety
    /// avx512f; tiles.mr == 8; out.len() == taps · 8.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn expand8(tiles: &QuantTiles, block: usize, out: &mut [f32]) {
        let (taps, bytes) = (tiles.taps, &tiles.laid.bytes);
        assert!(tiles.mr == 8 && out.len() == taps * 8, "quant tiles: block of another shape");
        let first = block * taps * 8;
        // The last step loads up to 8 bytes past the block's own (the slack covers them).
        let end = match tiles.format {
            Format::Int8 => first + taps * 8,
            Format::Int4 { .. } => (first + taps * 8) / 2,
        };
        assert!(bytes.len() >= end + 16, "quant tiles: block out of bounds");
        let scale_row = |t: usize| tiles.lane_scales[(block * tiles.scale_blocks + tiles.tap_scale[t]) * 8..][..8].as_ptr();
        // Lane j holds byte j/2 of 8; the odd lanes shift their nibble down.
        let odd_lanes = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
        for t in (0..taps).step_by(2) {
            let e = first + t * 8;
            let q = match tiles.format {
                Format::Int8 => _mm512_cvtepi8_epi32(_mm_loadu_si128(bytes.as_ptr().add(e) as *const __m128i)),
                Format::Int4 { .. } => {
                    let b = _mm_loadl_epi64(bytes.as_ptr().add(e / 2) as *const __m128i);
                    let nibbles = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b)), odd_lanes);
                    _mm512_srai_epi32::<28>(_mm512_slli_epi32::<28>(nibbles))
                }
            };
            // Lanes 0..8 are tap t's channels, 8..16 tap t+1's (past the last tap: t's, unused).
            let lo = _mm512_castps256_ps512(_mm256_loadu_ps(scale_row(t)));
            let hi = _mm512_castps256_ps512(_mm256_loadu_ps(scale_row((t + 1).min(taps - 1))));
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_shuffle_f32x4::<0b01_00_01_00>(lo, hi));
            let mask: __mmask16 = if t + 1 < taps { !0 } else { 0x00ff };
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(t * 8), mask, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu::quant::rows::dequantize_row;
    use crate::simd::{level, set_level, SimdLevel};

    /// Every block of every format and level against the dequantized rows placed as direct.rs's
    /// `pack_filters` places them.
    #[test]
    fn blocks_equal_the_dequantized_rows_in_tile_order() {
        let best = level();
        for forced in [SimdLevel::Avx512, SimdLevel::Scalar] {
            set_level(forced);
            for &(rows, taps, format) in &[
                (64usize, 288usize, Format::Int4 { block: 32 }),
                (13, 27, Format::Int4 { block: 5 }),
                (9, 72, Format::Int8),
                (20, 45, Format::Int8),
                (3, 18, Format::Int4 { block: 4 }),
                (5, 9, Format::Int4 { block: 32 }),
            ] {
                let (row_bytes, row_scales) = format.row_sizes(taps);
                let mut q: Vec<i8> = (0..rows * row_bytes).map(|j| (j as u32).wrapping_mul(2_654_435_761).rotate_right(11) as i8).collect();
                if let (Format::Int4 { .. }, true) = (format, taps % 2 == 1) {
                    // An odd row ends in a zero high nibble (the stored format).
                    (0..rows).for_each(|o| q[(o + 1) * row_bytes - 1] &= 0x0f);
                }
                let scales: Vec<f32> = (0..rows * row_scales).map(|j| 0.01 + (j % 17) as f32 * 0.03).collect();
                let mr = direct::tile_rows(rows);
                let laid = Arc::new(TileBytes::new(format, &q, rows, taps, mr));
                let tiles = QuantTiles::new(laid, format, rows, taps, mr, &scales, "test").unwrap();
                let mut rows_f32 = vec![0.0f32; rows * taps];
                for o in 0..rows {
                    dequantize_row(format, &q[o * row_bytes..(o + 1) * row_bytes], &scales[o * row_scales..(o + 1) * row_scales], &mut rows_f32[o * taps..(o + 1) * taps]);
                }
                let mut scratch = vec![f32::NAN; tiles.scratch_len()];
                for b in 0..rows.div_ceil(mr) {
                    let (first, row_stride, tap_stride) = tiles.block(b, &mut scratch);
                    assert_eq!((first, row_stride, tap_stride), (scratch.as_ptr(), 1, mr));
                    let got = &scratch[..taps * mr];
                    for t in 0..taps {
                        for r in 0..mr {
                            let o = b * mr + r;
                            let want = if o < rows { rows_f32[o * taps + t] } else { 0.0 };
                            assert_eq!(got[t * mr + r], want, "{forced:?} {format:?} rows {rows} taps {taps}: block {b} tap {t} lane {r}");
                        }
                    }
                }
            }
        }
        set_level(best);
    }
}
