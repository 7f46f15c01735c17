//! Fused optimizer updates: one pass over a parameter, its gradient and its state per step,
//! updating them in place (copy-on-write, see Tensor::data_mut_f32). Gradient clipping by value
//! and the global-norm clipping factor are folded into the same pass. This file checks shapes and
//! dispatches; the CPU kernels are device/cpu/optim.rs.

use crate::error::{fmt_shape, KilnError, Result};
use crate::tensor::Tensor;

pub use crate::params::optim::{GradTransform, Rule};

/// Updates `param` (and `state`, which must hold `rule.state_count()` tensors of the
/// parameter's shape) in place from `grad`.
pub fn step(rule: Rule, transform: GradTransform, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor]) -> Result<()> {
    let op = rule.name();
    if grad.shape() != param.shape() {
        return Err(KilnError::new(op, format!("gradient shape {} does not match parameter shape {}", fmt_shape(grad.shape()), fmt_shape(param.shape()))));
    }
    if state.len() != rule.state_count() || state.iter().any(|s| s.shape() != param.shape()) {
        return Err(KilnError::new(op, format!("expected {} state tensors of shape {}", rule.state_count(), fmt_shape(param.shape()))));
    }
    let mut all: Vec<&Tensor> = vec![param, grad];
    all.extend(state.iter());
    let dev = crate::device::dispatch(op, &all)?;
    dev.optim_step(rule, transform, param, grad, state)
}
