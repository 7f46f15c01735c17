//! The three convolution passes on the CPU (engine.rs, over im2col.rs's patch copies; depthwise.rs
//! for one input channel per group): a conv-transpose's forward is a convolution's input
//! gradient, so ops/conv.rs runs both ops on these three.

mod depthwise;
pub(crate) mod engine;
mod epilogue;
mod im2col;

use crate::error::Result;
use crate::params::conv::{Activation, Geometry};
use crate::tensor::Tensor;

/// engine::forward: [N, O, OH, OW], then `activation` (epilogue.rs).
pub(crate) fn forward(geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, activation: Option<Activation>, op: &str) -> Result<Tensor> {
    let (x, w) = (x.materialize()?, w.materialize()?);
    let b = bias.map(|b| b.elements::<f32>(op)).transpose()?;
    let (xs, ws) = (x.cpu_slice(op)?, w.cpu_slice(op)?);
    let out = if depthwise::applies(geo) {
        let mut out = depthwise::forward(geo, xs, ws, b.as_deref(), op)?;
        // The depthwise kernel's output is one band: the whole batch as [N·O, OH·OW].
        let plane = geo.out_plane();
        // SAFETY: `out` is this call's own [N·O, OH·OW] vector.
        unsafe { epilogue::apply_to_band(activation, out.as_mut_ptr(), geo.batch * geo.out_channels, plane, plane) };
        out
    } else {
        engine::forward_activated(geo, xs, &engine::Dense(ws), b.as_deref(), activation, op)?
    };
    Tensor::from_vec(out, &[geo.batch, geo.out_channels, geo.out_height, geo.out_width])
}

/// engine::input_grad: [N, C, H, W], plus `init` per channel.
pub(crate) fn input_grad(geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
    let (dy, w) = (dy.materialize()?, w.materialize()?);
    let init = init.map(|b| b.elements::<f32>(op)).transpose()?;
    let (dys, ws) = (dy.cpu_slice(op)?, w.cpu_slice(op)?);
    let dx = if depthwise::applies(geo) {
        depthwise::input_grad(geo, dys, ws, init.as_deref(), op)?
    } else {
        engine::input_grad(geo, dys, ws, init.as_deref(), op)?
    };
    Tensor::from_vec(dx, &[geo.batch, geo.channels, geo.height, geo.width])
}

/// engine::weight_grad: [O, C/groups, KH, KW].
pub(crate) fn weight_grad(geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
    let (x, dy) = (x.materialize()?, dy.materialize()?);
    let (xs, dys) = (x.cpu_slice(op)?, dy.cpu_slice(op)?);
    let dw = if depthwise::applies(geo) {
        depthwise::weight_grad(geo, xs, dys, op)?
    } else {
        engine::weight_grad(geo, xs, dys, op)?
    };
    Tensor::from_vec(dw, &[geo.out_channels, geo.group_channels(), geo.kernel[0], geo.kernel[1]])
}
