//! 2-D max and average pooling over [batch, channels, height, width] (NCHW, PyTorch's layout).
//! The op checks the window into a `Plan` (params/pool.rs), hands it to the tensor's device
//! (the CPU's kernels are device/cpu/pool) and records one autograd node. Max pooling saves the
//! index of each window's first maximum (PyTorch's tie rule) for its backward, a scatter;
//! average pooling's backward spreads each output's gradient over its window.

pub use crate::params::pool::{AxisPlan, Plan, Pool2d};

use crate::autograd;
use crate::device;
use crate::error::{KilnError, Result};
use crate::tensor::Tensor;

/// Max pooling. x: [N, C, H, W] float32 -> [N, C, outH, outW] with
/// out = (in + padBefore + padAfter - dilation·(kernel - 1) - 1) / stride + 1 (floor).
/// Padding never wins (it acts as -inf). The gradient goes to the first maximum of each window.
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    const OP: &str = "maxPool2d";
    let plan = Plan::new(OP, x, &pool)?;
    let in_plane = plan.in_plane();
    if in_plane > i32::MAX as usize {
        return Err(KilnError::new(OP, format!("planes of {} elements are too large (at most 2^31 - 1)", in_plane)));
    }
    let tracked = x.requires_grad() && autograd::is_enabled();
    let dev = device::dispatch(OP, &[x])?;
    let (y, indices) = dev.max_pool2d(&plan, x, tracked)?;
    if !tracked {
        return Ok(y);
    }
    let in_shape = x.shape().to_vec();
    Ok(autograd::record(OP, &[x], &[&indices], y, move |g, saved, _needs| {
        Ok(vec![Some(dev.max_pool2d_backward(&plan, g, &saved[0], &in_shape)?)])
    }))
}

/// Average pooling. x: [N, C, H, W] float32 -> [N, C, outH, outW] (sizes as max_pool2d). With
/// `count_include_pad` every window divides by kernelH·kernelW (PyTorch's default); without, by
/// the number of its taps inside the input (TensorFlow's "same" padding).
pub fn avg_pool2d(x: &Tensor, pool: Pool2d, count_include_pad: bool) -> Result<Tensor> {
    const OP: &str = "avgPool2d";
    let plan = Plan::new(OP, x, &pool)?;
    let dev = device::dispatch(OP, &[x])?;
    let y = dev.avg_pool2d(&plan, x, count_include_pad)?;
    if !(x.requires_grad() && autograd::is_enabled()) {
        return Ok(y);
    }
    let in_shape = x.shape().to_vec();
    Ok(autograd::record(OP, &[x], &[], y, move |g, _saved, _needs| {
        Ok(vec![Some(dev.avg_pool2d_backward(&plan, g, &in_shape, count_include_pad)?)])
    }))
}
