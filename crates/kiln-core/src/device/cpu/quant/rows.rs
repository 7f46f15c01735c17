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


/// Quantized weight rows, expanded on demand.
pub(crate) struct RowSource<'a> {
    pub format: Format,
    pub q: &'a [i8],
    pub scales: &'a [f32],
    pub in_features: usize,
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
