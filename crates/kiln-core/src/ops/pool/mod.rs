//! 2-D max and average pooling over [batch, channels, height, width] (NCHW, PyTorch's layout).
//!
//! Every (batch, channel) plane is independent, so planes are the unit of parallel work
//! (planes.rs); inside a plane, the windows of an output row are computed in vector lanes over a
//! padded copy of the plane (kernels.rs). Max pooling saves the index of each window's first
//! maximum (PyTorch's tie rule) for its backward, a scatter; average pooling's backward spreads
//! each output's gradient over its window.

mod kernels;
mod planes;

pub(crate) use planes::for_each_plane;
pub use crate::params::pool::{AxisPlan, Plan, Pool2d};

use crate::autograd;
use crate::error::{KilnError, Result};
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use kernels::{avg_plane_backward, avg_pool_plane, max_pool_plane};
use planes::divisors;

/// Max pooling. x: [N, C, H, W] float32 -> [N, C, outH, outW] with
/// out = (in + padBefore + padAfter - dilation·(kernel - 1) - 1) / stride + 1 (floor).
/// Padding never wins (it acts as -inf). The gradient goes to the first maximum of each window.
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    const OP: &str = "maxPool2d";
    let plan = Plan::new(OP, x, &pool)?;
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    if in_plane > i32::MAX as usize {
        return Err(KilnError::new(OP, format!("planes of {} elements are too large (at most 2^31 - 1)", in_plane)));
    }
    let tracked = x.requires_grad() && autograd::is_enabled();
    if let Some(dev) = crate::device::device_of(OP, &[x])? {
        let (y, indices) = dev.max_pool2d(&plan, x)?;
        if !tracked {
            return Ok(y);
        }
        let in_shape = x.shape().to_vec();
        return Ok(autograd::record(OP, &[x], &[&indices], y, move |g, saved, _needs| {
            Ok(vec![Some(dev.max_pool2d_backward(&plan, g, &saved[0], &in_shape)?)])
        }));
    }
    let xs = x.materialize()?;
    let data = xs.contiguous_slice::<f32>().unwrap();
    let total = plan.planes * out_plane;
    let mut out = try_zeroed::<f32>(OP, total)?;
    let mut idx = if tracked { try_zeroed::<i32>(OP, total)? } else { Vec::new() };
    let work = out_plane * pool.kernel[0] * pool.kernel[1];
    for_each_plane(plan.planes, work, out_plane, &mut out, &mut idx, |p, out, idx| {
        max_pool_plane(&plan, &data[p * in_plane..(p + 1) * in_plane], out, idx);
    });
    let out_shape = plan.out_shape(x);
    let y = Tensor::from_vec(out, &out_shape)?;
    if !tracked {
        return Ok(y);
    }
    let indices = Tensor::from_vec(idx, &out_shape)?;
    let planes = plan.planes;
    let in_shape = x.shape().to_vec();
    Ok(autograd::record(OP, &[x], &[&indices], y, move |g, saved, _needs| {
        let g = g.materialize()?;
        let gs = g.contiguous_slice::<f32>().unwrap();
        let idx = saved[0].contiguous_slice::<i32>().unwrap();
        let mut gx = try_zeroed::<f32>(OP, planes * in_plane)?;
        // Each plane's gradient is written only by that plane's outputs, so planes run in parallel.
        for_each_plane(planes, out_plane, in_plane, &mut gx, &mut [], |p, dst, _| {
            let range = p * out_plane..(p + 1) * out_plane;
            for (&i, &v) in idx[range.clone()].iter().zip(&gs[range]) {
                dst[i as usize] += v;
            }
        });
        Ok(vec![Some(Tensor::from_vec(gx, &in_shape)?)])
    }))
}

/// Average pooling. x: [N, C, H, W] float32 -> [N, C, outH, outW] (sizes as max_pool2d). With
/// `count_include_pad` every window divides by kernelH·kernelW (PyTorch's default); without, by
/// the number of its taps inside the input (TensorFlow's "same" padding).
pub fn avg_pool2d(x: &Tensor, pool: Pool2d, count_include_pad: bool) -> Result<Tensor> {
    const OP: &str = "avgPool2d";
    let plan = Plan::new(OP, x, &pool)?;
    if let Some(dev) = crate::device::device_of(OP, &[x])? {
        let y = dev.avg_pool2d(&plan, x, count_include_pad)?;
        if !(x.requires_grad() && autograd::is_enabled()) {
            return Ok(y);
        }
        let in_shape = x.shape().to_vec();
        return Ok(autograd::record(OP, &[x], &[], y, move |g, _saved, _needs| {
            Ok(vec![Some(dev.avg_pool2d_backward(&plan, g, &in_shape, count_include_pad)?)])
        }));
    }
    let xs = x.materialize()?;
    let data = xs.contiguous_slice::<f32>().unwrap();
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    let scale = divisors(&plan, count_include_pad);
    let mut out = try_zeroed::<f32>(OP, plan.planes * out_plane)?;
    let work = out_plane * pool.kernel[0] * pool.kernel[1];
    for_each_plane(plan.planes, work, out_plane, &mut out, &mut [], |p, out, _| {
        avg_pool_plane(&plan, &scale, &data[p * in_plane..(p + 1) * in_plane], out);
    });
    let y = Tensor::from_vec(out, &plan.out_shape(x))?;
    if !(x.requires_grad() && autograd::is_enabled()) {
        return Ok(y);
    }
    let in_shape = x.shape().to_vec();
    let runs = plan.column_runs();
    Ok(autograd::record(OP, &[x], &[], y, move |g, _saved, _needs| {
        let g = g.materialize()?;
        let gs = g.contiguous_slice::<f32>().unwrap();
        let mut gx = try_zeroed::<f32>(OP, plan.planes * in_plane)?;
        for_each_plane(plan.planes, work, in_plane, &mut gx, &mut [], |p, dst, _| {
            avg_plane_backward(&plan, &runs, &scale, &gs[p * out_plane..(p + 1) * out_plane], dst);
        });
        Ok(vec![Some(Tensor::from_vec(gx, &in_shape)?)])
    }))
}
