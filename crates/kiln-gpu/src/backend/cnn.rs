//! The CNN family on the GPU (kernels/cnn/): conv2d / convTranspose2d passes, pooling and batch
//! normalization, for kiln-core's ops (see mod.rs for the viewing and wrapping).

use super::GpuBackend;
use crate::kernels::cnn::{batch_norm as bn, conv, pool};
use crate::kernels::elementwise;
use kiln_core::ops::conv::{Epilogue, Geometry};
use kiln_core::ops::BinaryOp;
use kiln_core::ops::pool::Plan;
use kiln_core::ops::BatchNorm;
use kiln_core::{Result, Tensor};

/// The convolution, then the epilogue as the add and unary kernels queued right behind it (a
/// residual added, an activation applied): the output stays on the device between them and no
/// tensor is handed back in between. Unfused on the GPU: three passes where the CPU makes one.
pub fn conv2d_forward(b: &GpuBackend, geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
    let bias = bias.map(|t| b.gpu(t)).transpose()?;
    let mut y = conv::forward(b.device(), geo, &b.gpu(x)?, &b.gpu(w)?, bias.as_ref(), op)?;
    if let Some(r) = epilogue.residual {
        y = elementwise::binary(b.device(), BinaryOp::Add, &y, &b.gpu(r)?)?;
    }
    if let Some(a) = epilogue.activation {
        y = elementwise::unary(b.device(), a.op, &y, a.alpha)?;
    }
    Ok(b.wrap(y))
}

pub fn conv2d_input_grad(b: &GpuBackend, geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
    let init = init.map(|t| b.gpu(t)).transpose()?;
    Ok(b.wrap(conv::input_grad(b.device(), geo, &b.gpu(dy)?, &b.gpu(w)?, init.as_ref(), op)?))
}

pub fn conv2d_weight_grad(b: &GpuBackend, geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
    Ok(b.wrap(conv::weight_grad(b.device(), geo, &b.gpu(x)?, &b.gpu(dy)?, op)?))
}

pub fn max_pool2d(b: &GpuBackend, plan: &Plan, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (y, idx) = pool::max_pool2d(b.device(), plan, &b.gpu(x)?)?;
    Ok((b.wrap(y), b.wrap(idx)))
}

pub fn max_pool2d_backward(b: &GpuBackend, plan: &Plan, g: &Tensor, indices: &Tensor, in_shape: &[usize]) -> Result<Tensor> {
    Ok(b.wrap(pool::max_pool2d_backward(b.device(), plan, &b.gpu(g)?, &b.gpu(indices)?, in_shape)?))
}

pub fn avg_pool2d(b: &GpuBackend, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
    Ok(b.wrap(pool::avg_pool2d(b.device(), plan, &b.gpu(x)?, count_include_pad)?))
}

pub fn avg_pool2d_backward(b: &GpuBackend, plan: &Plan, g: &Tensor, in_shape: &[usize], count_include_pad: bool) -> Result<Tensor> {
    Ok(b.wrap(pool::avg_pool2d_backward(b.device(), plan, &b.gpu(g)?, in_shape, count_include_pad)?))
}

/// In training the running statistics get buffers of their own first (copy-on-write, as on the
/// CPU), then the statistics kernel updates them in place.
pub fn batch_norm(b: &GpuBackend, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, running: Option<(&mut Tensor, &mut Tensor)>, options: BatchNorm) -> Result<(Tensor, Tensor)> {
    let running = match running {
        Some((rm, rv)) => {
            if options.training {
                b.make_unique(rm)?;
                b.make_unique(rv)?;
            }
            Some((b.gpu(rm)?, b.gpu(rv)?))
        }
        None => None,
    };
    let (weight, bias) = (weight.map(|t| b.gpu(t)).transpose()?, bias.map(|t| b.gpu(t)).transpose()?);
    let running = running.as_ref().map(|(m, v)| (m, v));
    let (y, stats) = bn::batch_norm_in_place(b.device(), &b.gpu(x)?, weight.as_ref(), bias.as_ref(), running, options)?;
    Ok((b.wrap(y), b.wrap(stats)))
}

pub fn batch_norm_backward(b: &GpuBackend, g: &Tensor, x: &Tensor, stats: &Tensor, weight: Option<&Tensor>, batch_stats: bool, need_input: bool) -> Result<(Option<Tensor>, Tensor, Tensor)> {
    let weight = weight.map(|t| b.gpu(t)).transpose()?;
    let (dx, dw, db) = bn::batch_norm_backward(b.device(), &b.gpu(g)?, &b.gpu(x)?, &b.gpu(stats)?, weight.as_ref(), batch_stats, need_input)?;
    Ok((dx.map(|t| b.wrap(t)), b.wrap(dw), b.wrap(db)))
}
