//! The CPU's softmax and logSoftmax: the axis is moved last, each contiguous row is computed with
//! its max subtracted first (large logits never overflow), and the axis is moved back.

use crate::error::Result;
use crate::math;
use crate::multiversion;
use crate::parallel;
use crate::tensor::Tensor;
use super::reduce::{log_sum_exp_row, max_row};

multiversion! {
    fn exp_shifted_into(x: &[f32], shift: f32, out: &mut [f32]) -> f32 {
        let mut sum = 0.0;
        for (o, &v) in out.iter_mut().zip(x) {
            let e = math::exp(v - shift);
            *o = e;
            sum += e;
        }
        sum
    }
}

fn softmax_row(x: &[f32], out: &mut [f32]) {
    let m = max_row(x);
    if m == f32::INFINITY || m.is_nan() {
        // An inf logit takes all the mass; NaN poisons the row. Matches the limit of the formula.
        for (o, &v) in out.iter_mut().zip(x) {
            *o = if m.is_nan() { f32::NAN } else if v == f32::INFINITY { 1.0 } else { 0.0 };
        }
        let infs = out.iter().filter(|&&v| v == 1.0).count() as f32;
        out.iter_mut().for_each(|v| *v /= infs.max(1.0));
        return;
    }
    let sum = exp_shifted_into(x, m, out);
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|v| *v *= inv);
}

fn log_softmax_row(x: &[f32], out: &mut [f32]) {
    let lse = log_sum_exp_row(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v - lse;
    }
}

/// softmax (logSoftmax when `log`) of float32 `x` along `axis` (normalized by ops::softmax).
pub(crate) fn forward(x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    let name = if log { "logSoftmax" } else { "softmax" };
    let rank = x.rank();
    // Move the axis last, work on contiguous rows, move it back.
    let mut perm: Vec<isize> = (0..rank as isize).filter(|&d| d != axis as isize).collect();
    perm.push(axis as isize);
    let moved = x.permute(&perm)?.materialize()?;
    let data = moved.cpu_slice::<f32>(name)?;
    let row_len = x.shape()[axis];
    let mut out = crate::storage::try_zeroed::<f32>(name, data.len())?;
    if row_len > 0 {
        let row_fn = if log { log_softmax_row } else { softmax_row };
        parallel::zip_chunks(data, &mut out, row_len, |src, dst| {
            for (s, d) in src.chunks(row_len).zip(dst.chunks_mut(row_len)) {
                row_fn(s, d);
            }
        });
    }
    let result = Tensor::from_vec(out, moved.shape())?;
    let mut inverse = vec![0isize; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p as usize] = i as isize;
    }
    // Detached: this is the kernel's result; `softmax` records the op.
    Ok(result.permute(&inverse)?.materialize()?.detach())
}
