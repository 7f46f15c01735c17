//! attention on a device (the GPU): the same checks and the same one autograd node as on the
//! CPU; the device runs the fused forward and backward kernels. The padding mask goes to the
//! device as it is (the device turns it into its additive bias); `options` carries the dropout
//! seed drawn by the op, so forward and backward regenerate the same mask.

use crate::params::attention::AttentionOptions;
use crate::autograd;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;
use std::sync::Arc;

const OP: &str = "attention";

pub(super) fn attention(dev: Arc<dyn Device>, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<Tensor> {
    let options = *options;
    let (out, lse) = dev.attention(q, k, v, mask, &options)?;
    let mut saved = vec![q, k, v, &out, &lse];
    saved.extend(mask);
    Ok(autograd::record(OP, &[q, k, v], &saved, out.clone(), move |g, saved, needs| {
        let grads = dev.attention_backward(&saved[0], &saved[1], &saved[2], saved.get(5), &saved[3], &saved[4], g, &options)?;
        Ok(grads.into_iter().zip(needs).map(|(t, &need)| need.then_some(t)).collect())
    }))
}
