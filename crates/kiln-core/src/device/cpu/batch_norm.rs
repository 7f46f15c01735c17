//! The CPU's fused batch normalization over [batch, channels, ...]: statistics, normalization,
//! scale and shift in three passes over the input, the running-statistics update in place, and a
//! backward of two passes over (gradient, input). The input is seen as rows of `spatial` values:
//! row r is (batch r / C, channel r % C). Rows are the unit of parallel work, so a layer with few
//! channels still uses every thread; per-row partial sums are combined per channel in f64.
//! Arguments are checked by ops/batch_norm.rs.

use crate::error::Result;
use crate::multiversion;
use crate::params::batch_norm::BatchNorm;
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use super::pool::for_each_plane;
use super::reduce::sum_row;

const OP: &str = "batchNorm";

/// Elements summed in f32 before joining an f64 total (as reduce.rs's SUM_BLOCK).
const BLOCK: usize = 1024;


multiversion! {
    /// Σ (x − mean)² over a block, 16 accumulators.
    fn centered_squares_block(x: &[f32], mean: f32) -> f32 {
        let mut acc = [0.0f32; 16];
        let chunks = x.chunks_exact(16);
        let tail: f32 = chunks.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
        for c in chunks {
            for i in 0..16 {
                let d = c[i] - mean;
                acc[i] += d * d;
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// Σ g·(x − mean) over a block, 16 accumulators.
    fn centered_dot_block(g: &[f32], x: &[f32], mean: f32) -> f32 {
        let mut acc = [0.0f32; 16];
        let gc = g.chunks_exact(16);
        let xc = x.chunks_exact(16);
        let tail: f32 = gc.remainder().iter().zip(xc.remainder()).map(|(&g, &v)| g * (v - mean)).sum();
        for (gb, xb) in gc.zip(xc) {
            for i in 0..16 {
                acc[i] += gb[i] * (xb[i] - mean);
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// out = a·x + b.
    fn affine_row(x: &[f32], a: f32, b: f32, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = a * v + b;
        }
    }
}

multiversion! {
    /// out = a·g + k·x + b (the input gradient of batch normalization, per channel constants).
    fn input_grad_row(g: &[f32], x: &[f32], a: f32, k: f32, b: f32, out: &mut [f32]) {
        for ((o, &gv), &xv) in out.iter_mut().zip(g).zip(x) {
            *o = a * gv + k * xv + b;
        }
    }
}

/// Σ over rows of one channel, from per-row values.
/// Fallible: an empty input ([N, C, 0]) may declare more channels or rows than memory holds.
fn per_channel(rows: &[f64], channels: usize) -> Result<Vec<f64>> {
    let mut out = crate::alloc::try_vec(OP, channels, 0.0f64)?;
    for (r, v) in rows.iter().enumerate() {
        out[r % channels] += v;
    }
    Ok(out)
}

/// f(row index, row) for every row, in parallel when large; the results per row.
fn map_rows(data: &[f32], row_len: usize, rows: usize, f: impl Fn(usize, &[f32]) -> f64 + Sync + Send) -> Result<Vec<f64>> {
    let mut out = crate::alloc::try_vec(OP, rows, 0.0f64)?;
    for_each_plane(rows, row_len, 1, &mut out, &mut [], |r, o, _| {
        o[0] = f(r, &data[r * row_len..(r + 1) * row_len]);
    });
    Ok(out)
}

fn blocked(row: &[f32], f: impl Fn(&[f32]) -> f32) -> f64 {
    row.chunks(BLOCK).map(|b| f(b) as f64).sum()
}

/// (y, statistics [2, C]: mean and 1/sqrt(var + eps)); in training the running statistics are
/// updated in place (copy-on-write).
pub(crate) fn forward(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, running: Option<(&mut Tensor, &mut Tensor)>, options: BatchNorm) -> Result<(Tensor, Tensor)> {
    let BatchNorm { training, momentum, eps } = options;
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let spatial: usize = x.shape()[2..].iter().product();
    let count = n * spatial; // values per channel
    let batch_stats = training || running.is_none();
    let xs = x.materialize()?;
    let data = xs.cpu_slice::<f32>(OP)?;
    let rows = n * c;
    let (mean, var): (Vec<f64>, Vec<f64>) = match running.as_ref().filter(|_| !batch_stats) {
        Some((m, v)) => (m.elements::<f32>(OP)?.iter().map(|&v| v as f64).collect(), v.elements::<f32>(OP)?.iter().map(|&v| v as f64).collect()),
        None => {
            let sums = per_channel(&map_rows(data, spatial, rows, |_, row| sum_row(row) as f64)?, c)?;
            let mean: Vec<f64> = sums.iter().map(|s| s / count as f64).collect();
            // Second pass on centered values: E[x²] − E[x]² cancels badly when |mean| ≫ std.
            let squares = map_rows(data, spatial, rows, |r, row| blocked(row, |b| centered_squares_block(b, mean[r % c] as f32)))?;
            let var = per_channel(&squares, c)?.iter().map(|s| s / count as f64).collect();
            (mean, var)
        }
    };
    let inv_std: Vec<f32> = var.iter().map(|&v| (1.0 / (v + eps as f64).sqrt()) as f32).collect();
    let gamma = weight.map(|w| w.elements::<f32>(OP)).transpose()?;
    let beta = bias.map(|b| b.elements::<f32>(OP)).transpose()?;
    // y = x·scale + shift per channel.
    let scale: Vec<f32> = (0..c).map(|ch| inv_std[ch] * gamma.as_ref().map_or(1.0, |g| g[ch])).collect();
    let shift: Vec<f32> = (0..c).map(|ch| beta.as_ref().map_or(0.0, |b| b[ch]) - mean[ch] as f32 * scale[ch]).collect();
    let mut out = try_zeroed::<f32>(OP, data.len())?;
    for_each_plane(rows, spatial, spatial, &mut out, &mut [], |r, o, _| {
        affine_row(&data[r * spatial..(r + 1) * spatial], scale[r % c], shift[r % c], o);
    });

    if training {
        if let Some((rm, rv)) = running {
            let unbiased = count as f64 / (count as f64 - 1.0);
            let m = momentum as f64;
            for (r, &b) in rm.data_mut_f32(OP)?.iter_mut().zip(&mean) {
                *r = ((1.0 - m) * *r as f64 + m * b) as f32;
            }
            for (r, &b) in rv.data_mut_f32(OP)?.iter_mut().zip(&var) {
                *r = ((1.0 - m) * *r as f64 + m * b * unbiased) as f32;
            }
        }
    }

    let y = Tensor::from_vec(out, x.shape())?;
    // Saved for backward: (mean, 1/std) per channel; x̂ is recomputed there rather than kept.
    let stats: Vec<f32> = mean.iter().map(|&m| m as f32).chain(inv_std.iter().copied()).collect();
    Ok((y, Tensor::from_vec(stats, &[2, c])?))
}

/// (dx when `need_input`, dweight = Σ g·x̂ [C], dbias = Σ g [C]).
pub(crate) fn backward(g: &Tensor, x: &Tensor, stats: &Tensor, weight: Option<&Tensor>, batch_stats: bool, need_input: bool) -> Result<(Option<Tensor>, Tensor, Tensor)> {
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let spatial: usize = x.shape()[2..].iter().product();
    let (count, rows) = (n * spatial, n * c);
    let x = x.materialize()?;
    let g = g.materialize()?;
    let gs = g.cpu_slice::<f32>(OP)?;
    let xs = x.cpu_slice::<f32>(OP)?;
    let stats = stats.cpu_slice::<f32>(OP)?;
    let (mean, inv_std) = stats.split_at(c);
    let gamma: Vec<f32> = match weight { Some(w) => w.elements(OP)?, None => crate::alloc::try_filled(OP, c, 1.0)? };
    let sum_g = per_channel(&map_rows(gs, spatial, rows, |_, row| sum_row(row) as f64)?, c)?;
    // Σ g·x̂ = (1/std)·Σ g·(x − μ)
    let dots = map_rows(gs, spatial, rows, |r, gr| {
        let xr = &xs[r * spatial..(r + 1) * spatial];
        gr.chunks(BLOCK).zip(xr.chunks(BLOCK)).map(|(gb, xb)| centered_dot_block(gb, xb, mean[r % c]) as f64).sum()
    })?;
    let sum_g_xhat: Vec<f64> = per_channel(&dots, c)?.iter().zip(inv_std).map(|(d, &s)| d * s as f64).collect();

    let dx = if need_input {
        // Batch statistics depend on x: dx = γ/σ·(g − mean(g) − x̂·mean(g·x̂)), written as
        // a·g + k·x + b per channel. Running statistics are constants: dx = γ/σ·g.
        let consts: Vec<(f32, f32, f32)> = (0..c)
            .map(|ch| {
                let a = gamma[ch] * inv_std[ch];
                if !batch_stats {
                    return (a, 0.0, 0.0);
                }
                let k = -(a as f64) * inv_std[ch] as f64 * sum_g_xhat[ch] / count as f64;
                let b = -(a as f64) * sum_g[ch] / count as f64 - k * mean[ch] as f64;
                (a, k as f32, b as f32)
            })
            .collect();
        let mut gx = try_zeroed::<f32>(OP, xs.len())?;
        for_each_plane(rows, 2 * spatial, spatial, &mut gx, &mut [], |r, o, _| {
            let (a, k, b) = consts[r % c];
            let range = r * spatial..(r + 1) * spatial;
            input_grad_row(&gs[range.clone()], &xs[range], a, k, b, o);
        });
        Some(Tensor::from_vec(gx, x.shape())?)
    } else {
        None
    };
    let vector = |v: &[f64]| Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), &[c]);
    Ok((dx, vector(&sum_g_xhat)?, vector(&sum_g)?))
}
