//! Cross-entropy from logits, fused: log-softmax, the loss and (in backward) softmax - target
//! computed row by row in one kernel (device/cpu/loss.rs on the CPU), never materializing the
//! log-probabilities. This file validates, dispatches and records autograd.
//! Other losses (BCE, MSE, Huber, KL) are compositions of ops, in TypeScript.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::tensor::Tensor;

pub use crate::params::loss::{target_out_of_range, Reduction};


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

/// loss_i = -sum_c w_c q_ic log softmax(x_i)_c with q = (1 - ε) onehot(y_i) + ε / C, as PyTorch's
/// `cross_entropy(weight, label_smoothing)`; mean divides by sum_i w_{y_i}.
/// logits [N, C] float32, targets [N] int32 in [0, C), weights [C] or None -> [] (mean/sum) or [N].
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
    const OP: &str = "crossEntropy";
    cross_entropy_shape(
        (logits.shape(), logits.dtype()),
        (targets.shape(), targets.dtype()),
        weights.map(|w| (w.shape(), w.dtype())),
        smoothing,
    )?;
    let mut inputs = vec![logits, targets];
    inputs.extend(weights);
    // Target values are checked by the device (the CPU at once, the GPU at the next readback);
    // the backward pass reads the inputs again there.
    let dev = crate::device::dispatch(OP, &inputs)?;
    let out = dev.cross_entropy(logits, targets, weights, smoothing, reduction)?;
    let has_weights = weights.is_some();
    Ok(autograd::record(OP, &[logits], &inputs, out, move |g, saved, _needs| {
        let weights = if has_weights { Some(&saved[2]) } else { None };
        Ok(vec![Some(dev.cross_entropy_backward(&saved[0], &saved[1], weights, smoothing, reduction, g)?)])
    }))
}
