//! The three convolution passes on the CPU (engine.rs, over im2col.rs's patch copies; depthwise.rs
//! for one input channel per group; winograd.rs for the forward pass of 3x3 stride-1 convolutions
//! on wasm32): a conv-transpose's forward is a convolution's input gradient, so ops/conv.rs runs
//! both ops on these three.

mod depthwise;
pub(crate) mod engine;
mod im2col;
mod lanes;
mod winograd;

use crate::error::Result;
use crate::params::conv::Geometry;
use crate::tensor::Tensor;

/// engine::forward: [N, O, OH, OW].
pub(crate) fn forward(geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, op: &str) -> Result<Tensor> {
    let (x, w) = (x.materialize()?, w.materialize()?);
    let b = bias.map(|b| b.elements::<f32>(op)).transpose()?;
    let (xs, ws) = (x.cpu_slice(op)?, w.cpu_slice(op)?);
    let out = if depthwise::applies(geo) {
        depthwise::forward(geo, xs, ws, b.as_deref(), op)?
    } else if winograd::applies(geo) {
        winograd::forward(geo, xs, ws, b.as_deref(), op)?
    } else {
        engine::forward(geo, xs, &engine::Dense(ws), b.as_deref(), op)?
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
