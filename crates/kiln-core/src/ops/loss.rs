//! Cross-entropy from logits, fused: log-softmax, the loss and (in backward) softmax - target
//! computed row by row in one kernel, never materializing the log-probabilities.
//! Other losses (BCE, MSE, Huber, KL) are compositions of ops, in TypeScript.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::device::cpu::reduce::{log_sum_exp_row, max_row};
use crate::tensor::Tensor;

pub use crate::params::loss::Reduction;


/// crossEntropy's argument checks on (shape, dtype) -> (rows, classes); the GPU kernels share it.
pub fn cross_entropy_shape(logits: (&[usize], DType), targets: (&[usize], DType), weights: Option<(&[usize], DType)>, smoothing: f32) -> Result<(usize, usize)> {
    const OP: &str = "crossEntropy";
    let ((logits_shape, logits_dtype), (targets_shape, targets_dtype)) = (logits, targets);
    if logits_dtype != DType::F32 || logits_shape.len() != 2 {
        return Err(KilnError::new(OP, format!("logits must be float32 [batch, classes], got {} {}", logits_dtype, fmt_shape(logits_shape))));
    }
    let (n, c) = (logits_shape[0], logits_shape[1]);
    if targets_dtype != DType::I32 || targets_shape != [n] {
        return Err(KilnError::new(OP, format!(
            "targets must be int32 [{n}] (one class index per row of logits {}), got {} {}",
            fmt_shape(logits_shape), targets_dtype, fmt_shape(targets_shape)
        )));
    }
    if !(0.0..1.0).contains(&smoothing) {
        return Err(KilnError::new(OP, format!("labelSmoothing must be in [0, 1), got {smoothing}")));
    }
    if let Some((w_shape, w_dtype)) = weights {
        if w_dtype != DType::F32 || w_shape != [c] {
            return Err(KilnError::new(OP, format!("weights must be float32 [{c}], got {} {}", w_dtype, fmt_shape(w_shape))));
        }
    }
    Ok((n, c))
}

/// crossEntropy's message for a target outside [0, classes) at `row` (text: the GPU kernels fill
/// in "{value}" and "{position}" when they find one).
pub fn target_out_of_range(bad: &str, row: &str, classes: usize) -> String {
    format!("target {bad} at row {row} is out of range for {classes} classes")
}

/// loss_i = -sum_c w_c q_ic log softmax(x_i)_c with q = (1 - ε) onehot(y_i) + ε / C, as PyTorch's
/// `cross_entropy(weight, label_smoothing)`; mean divides by sum_i w_{y_i}.
/// logits [N, C] float32, targets [N] int32 in [0, C), weights [C] or None -> [] (mean/sum) or [N].
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
    const OP: &str = "crossEntropy";
    let (n, c) = cross_entropy_shape(
        (logits.shape(), logits.dtype()),
        (targets.shape(), targets.dtype()),
        weights.map(|w| (w.shape(), w.dtype())),
        smoothing,
    )?;
    let mut inputs = vec![logits, targets];
    inputs.extend(weights);
    if let Some(dev) = crate::device::device_of(OP, &inputs)? {
        // Targets are checked by the device (reported at the next readback); the backward pass
        // reads the inputs again there.
        let out = dev.cross_entropy(logits, targets, weights, smoothing, reduction)?;
        let has_weights = weights.is_some();
        return Ok(autograd::record(OP, &[logits], &inputs, out, move |g, saved, _needs| {
            let weights = if has_weights { Some(&saved[2]) } else { None };
            let dev = crate::device::device_of(OP, &[&saved[0], g])?.ok_or_else(|| KilnError::new(OP, "internal error: the saved logits left the device"))?;
            Ok(vec![Some(dev.cross_entropy_backward(&saved[0], &saved[1], weights, smoothing, reduction, g)?)])
        }));
    }
    let y = targets.elements::<i32>(OP)?;
    if let Some((i, &bad)) = y.iter().enumerate().find(|(_, &t)| t < 0 || t as usize >= c) {
        return Err(KilnError::new(OP, target_out_of_range(&bad.to_string(), &i.to_string(), c)));
    }
    let w: Vec<f32> = match weights {
        Some(w) => w.elements(OP)?,
        None => crate::alloc::try_filled(OP, c, 1.0)?,
    };
    let x = logits.materialize()?;
    let xs = x.contiguous_slice::<f32>().unwrap();
    let off = smoothing / c as f32;
    let on = 1.0 - smoothing + off;
    let w_sum_all: f32 = w.iter().sum();
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
        let smoothed = if off != 0.0 { off * row.iter().zip(&w).filter(|(_, &w)| w != 0.0).map(|(a, b)| a * b).sum::<f32>() } else { 0.0 };
        let target = if w[t] != 0.0 { (on - off) * w[t] * row[t] } else { 0.0 };
        losses[i] = lse * wq_sum - (smoothed + target);
    }
    let denominator: f32 = match reduction {
        Reduction::Mean => y.iter().map(|&t| w[t as usize]).sum(),
        _ => 1.0,
    };
    let out = match reduction {
        Reduction::None => Tensor::from_vec(losses, &[n])?,
        _ => Tensor::from_vec(vec![losses.iter().sum::<f32>() / denominator], &[])?,
    };
    Ok(autograd::record(OP, &[logits], &[&x], out, move |g, saved, _needs| {
        // d loss_i / d x_ic = p_ic * sum_k w_k q_ik - w_c q_ic, times the upstream gradient.
        let g = g.elements::<f32>(OP)?;
        let xs = saved[0].contiguous_slice::<f32>().unwrap();
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
        Ok(vec![Some(Tensor::from_vec(grad, &[n, c])?)])
    }))
}
