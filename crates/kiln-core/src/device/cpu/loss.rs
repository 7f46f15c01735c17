//! The CPU's fused cross-entropy from logits: log-softmax, the loss and (in backward) softmax -
//! target, row by row, never materializing the log-probabilities. Shapes and dtypes are
//! checked by ops/loss.rs; target values are checked here.

use crate::error::{KilnError, Result};
use crate::params::loss::{target_out_of_range, Reduction};
use crate::tensor::Tensor;
use super::reduce::{log_sum_exp_row, max_row};

const OP: &str = "crossEntropy";

/// What both passes read: the targets (checked), the class weights, the contiguous logits and
/// the label-smoothing constants.
struct Rows {
    n: usize,
    c: usize,
    y: Vec<i32>,
    w: Vec<f32>,
    x: Tensor,
    off: f32,
    on: f32,
    w_sum_all: f32,
}

impl Rows {
    fn new(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32) -> Result<Rows> {
        let (n, c) = (logits.shape()[0], logits.shape()[1]);
        let y = targets.elements::<i32>(OP)?;
        if let Some((i, &bad)) = y.iter().enumerate().find(|(_, &t)| t < 0 || t as usize >= c) {
            return Err(KilnError::new(OP, target_out_of_range(&bad.to_string(), &i.to_string(), c)));
        }
        let w: Vec<f32> = match weights {
            Some(w) => w.elements(OP)?,
            None => crate::alloc::try_filled(OP, c, 1.0)?,
        };
        let x = logits.materialize()?;
        let off = smoothing / c as f32;
        let on = 1.0 - smoothing + off;
        let w_sum_all: f32 = w.iter().sum();
        Ok(Rows { n, c, y, w, x, off, on, w_sum_all })
    }

    /// The mean's denominator: the weights of the targets, summed (1 for the other reductions).
    fn denominator(&self, reduction: Reduction) -> f32 {
        match reduction {
            Reduction::Mean => self.y.iter().map(|&t| self.w[t as usize]).sum(),
            _ => 1.0,
        }
    }
}

/// loss_i = -sum_c w_c q_ic log softmax(x_i)_c (see ops::cross_entropy).
pub(crate) fn forward(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
    let rows = Rows::new(logits, targets, weights, smoothing)?;
    let Rows { n, c, ref y, ref w, ref x, off, on, w_sum_all } = rows;
    let xs = x.cpu_slice::<f32>(OP)?;
    let mut losses = crate::alloc::try_zeroed::<f32>(OP, n)?;
    for i in 0..n {
        let row = &xs[i * c..(i + 1) * c];
        let lse = log_sum_exp_row(row);
        let t = y[i] as usize;
        // -sum_c w_c q_c (x_c - lse) = lse * sum_c w_c q_c - sum_c w_c q_c x_c
        let wq_sum = off * w_sum_all + (on - off) * w[t];
        // Terms whose factor is zero are skipped rather than multiplied: a -Inf logit times a zero
        // weight (or no smoothing) would give 0 * -Inf = NaN where the loss is +Inf or finite, as
        // in PyTorch. The GPU kernel (kiln-gpu kernels/loss.rs) makes the same choice.
        let smoothed = if off != 0.0 { off * row.iter().zip(w).filter(|(_, &w)| w != 0.0).map(|(a, b)| a * b).sum::<f32>() } else { 0.0 };
        let target = if w[t] != 0.0 { (on - off) * w[t] * row[t] } else { 0.0 };
        losses[i] = lse * wq_sum - (smoothed + target);
    }
    let out = match reduction {
        Reduction::None => Tensor::from_vec(losses, &[n])?,
        _ => Tensor::from_vec(vec![losses.iter().sum::<f32>() / rows.denominator(reduction)], &[])?,
    };
    Ok(out)
}

/// The logits' gradient from the loss's gradient `g`.
pub(crate) fn backward(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction, g: &Tensor) -> Result<Tensor> {
    let rows = Rows::new(logits, targets, weights, smoothing)?;
    let denominator = rows.denominator(reduction);
    let Rows { n, c, ref y, ref w, ref x, off, on, w_sum_all } = rows;
    let xs = x.cpu_slice::<f32>(OP)?;
    // d loss_i / d x_ic = p_ic * sum_k w_k q_ik - w_c q_ic, times the upstream gradient.
    let g = g.elements::<f32>(OP)?;
    let mut grad = crate::alloc::try_zeroed::<f32>(OP, n * c)?;
    for i in 0..n {
        let row = &xs[i * c..(i + 1) * c];
        let gi = match reduction {
            Reduction::None => g[i],
            _ => g[0] / denominator,
        };
        let t = y[i] as usize;
        let m = max_row(row);
        let sum: f32 = row.iter().map(|&v| (v - m).exp()).sum();
        let wq_sum = off * w_sum_all + (on - off) * w[t];
        for (k, out) in grad[i * c..(i + 1) * c].iter_mut().enumerate() {
            let p = (row[k] - m).exp() / sum;
            let q = if k == t { on } else { off };
            *out = gi * (p * wq_sum - w[k] * q);
        }
    }
    Tensor::from_vec(grad, &[n, c])
}
