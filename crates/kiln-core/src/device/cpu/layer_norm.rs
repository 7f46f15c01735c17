//! The CPU's layer normalization: each row of the normalized dims is read twice while it stays in
//! cache (its sum, then its centred squares: a two-pass variance, since E[x²] − E[x]² cancels
//! badly when |mean| ≫ std) and written once, normalized, scaled and shifted. Every pass works on
//! x − x₀ (x₀ the row's first value; exact in float32 for values within a factor 2 of it) with the
//! mean kept as x₀ + an offset: a row at 1000 ± 0.01 summed or centred as is loses a percent of its
//! spread to float32 rounding (of the running sums, and of the mean itself), its offsets lose
//! nothing. Rows are the unit of parallel work (`for_each_plane`, as batch_norm.rs). Arguments
//! are checked by ops/layer_norm.rs.

use super::pool::for_each_plane;
use crate::error::Result;
use crate::multiversion;
use crate::parallel::SendPtr;
use crate::storage::try_zeroed;
use crate::tensor::Tensor;

const OP: &str = "layerNorm";

multiversion! {
    /// Σ (x − shift) over a block, 16 accumulators.
    fn shifted_sum_block(x: &[f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; 16];
        let chunks = x.chunks_exact(16);
        let tail: f32 = chunks.remainder().iter().map(|&v| v - shift).sum();
        for c in chunks {
            for i in 0..16 {
                acc[i] += c[i] - shift;
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// Σ ((x − shift) − offset)² over a block, 16 accumulators.
    fn centred_squares_block(x: &[f32], shift: f32, offset: f32) -> f32 {
        let mut acc = [0.0f32; 16];
        let chunks = x.chunks_exact(16);
        let tail: f32 = chunks.remainder().iter().map(|&v| ((v - shift) - offset) * ((v - shift) - offset)).sum();
        for c in chunks {
            for i in 0..16 {
                let d = (c[i] - shift) - offset;
                acc[i] += d * d;
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// out = ((x − shift) − offset)·inv_std·w + b.
    fn normalize_row(x: &[f32], shift: f32, offset: f32, inv_std: f32, w: &[f32], b: &[f32], out: &mut [f32]) {
        for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(w).zip(b) {
            *o = ((v - shift) - offset) * inv_std * w + b;
        }
    }
}

/// f over a row in blocks of 1024 floats: float32 inside a block, f64 across blocks.
fn blocked(row: &[f32], f: impl Fn(&[f32]) -> f32) -> f64 {
    row.chunks(1024).map(|b| f(b) as f64).sum()
}

/// (y, mean, 1/√(var + eps)) over the dims from `axis` on; the statistics keep x's rank (the
/// normalized dims as 1), as the composed form's keepDims reductions do.
pub(crate) fn forward(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, axis: usize, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
    let d: usize = x.shape()[axis..].iter().product();
    let rows: usize = x.shape()[..axis].iter().product();
    let xs = x.materialize()?;
    let data = xs.cpu_slice::<f32>(OP)?;
    let w = match weight {
        Some(w) => w.elements::<f32>(OP)?,
        None => vec![1.0; d],
    };
    let b = match bias {
        Some(b) => b.elements::<f32>(OP)?,
        None => vec![0.0; d],
    };
    let mut out = try_zeroed::<f32>(OP, data.len())?;
    let mut mean = try_zeroed::<f32>(OP, rows)?;
    let mut inv_std = try_zeroed::<f32>(OP, rows)?;
    let (mean_ptr, inv_ptr) = (SendPtr(mean.as_mut_ptr()), SendPtr(inv_std.as_mut_ptr()));
    for_each_plane(rows, d, d, &mut out, &mut [], |r, o, _| {
        let row = &data[r * d..(r + 1) * d];
        let shift = row[0];
        let offset = (blocked(row, |block| shifted_sum_block(block, shift)) / d as f64) as f32;
        let var = blocked(row, |block| centred_squares_block(block, shift, offset)) / d as f64;
        let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
        normalize_row(row, shift, offset, inv, &w, &b, o);
        // SAFETY: row r's statistics are written by this plane alone.
        unsafe {
            *mean_ptr.ptr().add(r) = shift + offset;
            *inv_ptr.ptr().add(r) = inv;
        }
    });
    let stats_shape: Vec<usize> = x.shape().iter().enumerate().map(|(i, &n)| if i < axis { n } else { 1 }).collect();
    Ok((Tensor::from_vec(out, x.shape())?, Tensor::from_vec(mean, &stats_shape)?, Tensor::from_vec(inv_std, &stats_shape)?))
}
