//! The CPU's reductions: the reduced axes are moved last (a view, copied only if needed) so every
//! reduction is a loop over contiguous rows. Row helpers (`sum_row`, `max_row`, `log_sum_exp_row`)
//! serve softmax, batch norm and the losses too.

use crate::error::Result;
use crate::math;
use crate::multiversion;
use crate::parallel::{self, SendPtr};
use crate::params::reduce::ReduceOp;
use crate::tensor::Tensor;

/// Elements summed in f32 before the partial sum joins an f64 total: long enough to keep the
/// SIMD loop busy, short enough that f32 rounding stays negligible (a running f32 sum of 10^6
/// values drifts by ~1e-3 relative; blocked, it matches an f64 sum to ~1e-7).
const SUM_BLOCK: usize = 1024;

/// Sum of a row: blocks of SIMD f32 sums, combined in f64.
pub(crate) fn sum_row(x: &[f32]) -> f32 {
    x.chunks(SUM_BLOCK).map(|b| sum_block(b) as f64).sum::<f64>() as f32
}

multiversion! {
    /// Sum with 16 independent accumulators: vectorizes, and is more accurate than one running sum.
    fn sum_block(x: &[f32]) -> f32 {
        let mut acc = [0.0f32; 16];
        let chunks = x.chunks_exact(16);
        let tail = chunks.remainder();
        for c in chunks {
            for i in 0..16 {
                acc[i] += c[i];
            }
        }
        let mut s = 0.0;
        for &v in tail {
            s += v;
        }
        acc.iter().sum::<f32>() + s
    }
}

/// Sum of e^(x - shift) over a row, blocked like sum_row.
fn sum_exp_shifted(x: &[f32], shift: f32) -> f32 {
    x.chunks(SUM_BLOCK).map(|b| sum_exp_block(b, shift) as f64).sum::<f64>() as f32
}

multiversion! {
    /// Sum of e^(x - shift), the inner loop of softmax and logSumExp.
    fn sum_exp_block(x: &[f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                acc[i] += math::exp(c[i] - shift);
            }
        }
        let mut s = 0.0;
        for &v in tail {
            s += math::exp(v - shift);
        }
        acc.iter().sum::<f32>() + s
    }
}

/// Max of a row, NaN if any element is NaN.
pub(crate) fn max_row(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m || v.is_nan() || m.is_nan() { if m.is_nan() { m } else { v } } else { m })
}

fn min_row(x: &[f32]) -> f32 {
    x.iter().fold(f32::INFINITY, |m, &v| if v < m || v.is_nan() || m.is_nan() { if m.is_nan() { m } else { v } } else { m })
}

/// Index of the first maximum (first NaN wins, as in NumPy).
fn arg_row(x: &[f32], better: impl Fn(f32, f32) -> bool) -> i32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v.is_nan() {
            return i as i32;
        }
        if better(v, x[best]) {
            best = i;
        }
    }
    best as i32
}

pub(crate) fn log_sum_exp_row(x: &[f32]) -> f32 {
    let m = max_row(x);
    if !m.is_finite() {
        // All -inf -> -inf; any +inf -> +inf; NaN -> NaN.
        return m;
    }
    m + sum_exp_shifted(x, m).ln()
}

/// `op` over the `reduced` axes of `x` (normalized and validated by ops::reduce): float32 rows,
/// int32 indices for the arg reductions. The result is detached: the op records the gradient.
pub(crate) fn forward(op: ReduceOp, x: &Tensor, reduced: &[usize], keep_dims: bool, correction: usize) -> Result<Tensor> {
    let name = op.name();
    let rank = x.rank();
    let kept: Vec<usize> = (0..rank).filter(|d| !reduced.contains(d)).collect();
    let row_len: usize = reduced.iter().map(|&d| x.shape()[d]).product();
    let rows: usize = kept.iter().map(|&d| x.shape()[d]).product();
    let out_shape: Vec<usize> = if keep_dims {
        (0..rank).map(|d| if reduced.contains(&d) { 1 } else { x.shape()[d] }).collect()
    } else {
        kept.iter().map(|&d| x.shape()[d]).collect()
    };
    let perm: Vec<isize> = kept.iter().chain(reduced).map(|&d| d as isize).collect();
    let moved = x.permute(&perm)?.materialize()?;
    let data = moved.cpu_slice::<f32>(name)?;

    if op.is_arg() {
        let mut out = crate::alloc::try_zeroed::<i32>(name, rows)?;
        for_each_output_row(data, row_len, &mut out, |row| match op {
            ReduceOp::ArgMax => arg_row(row, |a, b| a > b),
            _ => arg_row(row, |a, b| a < b),
        });
        return Tensor::from_vec(out, &out_shape);
    }
    let mut out = crate::alloc::try_zeroed::<f32>(name, rows)?;
    for_each_output_row(data, row_len, &mut out, |row| match op {
        ReduceOp::Sum => sum_row(row),
        ReduceOp::Mean => sum_row(row) / row.len() as f32,
        ReduceOp::Max => max_row(row),
        ReduceOp::Min => min_row(row),
        ReduceOp::Variance => {
            // Two passes in f64: the centered sum of squares is where f32 loses the most.
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / row.len() as f64;
            let ss: f64 = row.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean)).sum();
            (ss / (row.len() as f64 - correction as f64)) as f32
        }
        ReduceOp::LogSumExp => log_sum_exp_row(row),
        ReduceOp::ArgMax | ReduceOp::ArgMin => unreachable!(),
    });
    Tensor::from_vec(out, &out_shape)
}

/// out[r] = f(row r of data), rows in parallel when the input is large.
fn for_each_output_row<T: Send + Sync + Copy>(data: &[f32], row_len: usize, out: &mut [T], f: impl Fn(&[f32]) -> T + Sync + Send) {
    let rows = out.len();
    if rows == 0 {
        return;
    }
    let dst = SendPtr(out.as_mut_ptr());
    let work = |start: usize, end: usize| {
        for r in start..end {
            let v = f(&data[r * row_len..(r + 1) * row_len]);
            // SAFETY: each row index is written by exactly one chunk.
            unsafe { *dst.get().add(r) = v };
        }
    };
    if data.len() < parallel::MIN_PARALLEL_ELEMENTS || rows == 1 {
        work(0, rows);
    } else {
        parallel::for_each_chunk(rows, parallel::chunk_count(data.len()), work);
    }
}
