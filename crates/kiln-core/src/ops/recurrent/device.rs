//! The recurrent op on a device (the GPU): the same validation and one autograd node as on the
//! CPU; the device runs the sequence (its input-projection matmul, per-step matmul and fused
//! cell kernel) and BPTT. Its workspace comes back as device tensors and lives in the closure
//! until backward, like the CPU's.

use super::{Cell, Weights};
use crate::autograd;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;
use std::sync::Arc;

/// `inputs` is the op's input list (x, h0, [c0], w_ih, w_hh, [b_ih], [b_hh]), all on `dev`.
#[allow(clippy::too_many_arguments)]
pub(super) fn recurrent(dev: Arc<dyn Device>, cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, weights: &Weights, reverse: bool, inputs: &[&Tensor]) -> Result<Tensor> {
    let (out, workspace) = dev.recurrent(cell, x, h0, c0, weights, reverse)?;
    let has_c0 = c0.is_some();
    let (has_b_ih, has_b_hh) = (weights.b_ih.is_some(), weights.b_hh.is_some());
    Ok(autograd::record(cell.name(), inputs, inputs, out, move |g, saved, needs| {
        // saved mirrors `inputs`: x, h0, [c0], w_ih, w_hh, [b_ih], [b_hh].
        let w0 = if has_c0 { 3 } else { 2 };
        let mut next = w0 + 2;
        let mut take = |present: bool| {
            let t = if present { saved.get(next) } else { None };
            next += present as usize;
            t
        };
        let weights = Weights { w_ih: &saved[w0], w_hh: &saved[w0 + 1], b_ih: take(has_b_ih), b_hh: take(has_b_hh) };
        let grads = dev.recurrent_backward(cell, &saved[0], &weights, &workspace, g, reverse)?;
        Ok(grads.into_iter().zip(needs).map(|(t, &need)| need.then_some(t)).collect())
    }))
}
