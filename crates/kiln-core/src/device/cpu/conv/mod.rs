//! The three convolution passes on the CPU (engine.rs, over im2col.rs's patch copies): a
//! conv-transpose's forward is a convolution's input gradient, so ops/conv.rs runs both ops on
//! these three.

pub(crate) mod engine;
mod im2col;

use crate::error::Result;
use crate::params::conv::Geometry;
use crate::tensor::Tensor;

/// engine::forward: [N, O, OH, OW].
pub(crate) fn forward(geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, op: &str) -> Result<Tensor> {
    let (x, w) = (x.materialize()?, w.materialize()?);
    let b = bias.map(|b| b.elements::<f32>(op)).transpose()?;
    let out = engine::forward(geo, x.cpu_slice(op)?, &engine::Dense(w.cpu_slice(op)?), b.as_deref(), op)?;
    Tensor::from_vec(out, &[geo.batch, geo.out_channels, geo.out_height, geo.out_width])
}

/// engine::input_grad: [N, C, H, W], plus `init` per channel.
pub(crate) fn input_grad(geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
    let (dy, w) = (dy.materialize()?, w.materialize()?);
    let init = init.map(|b| b.elements::<f32>(op)).transpose()?;
    let dx = engine::input_grad(geo, dy.cpu_slice(op)?, w.cpu_slice(op)?, init.as_deref(), op)?;
    Tensor::from_vec(dx, &[geo.batch, geo.channels, geo.height, geo.width])
}

/// engine::weight_grad: [O, C/groups, KH, KW].
pub(crate) fn weight_grad(geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
    let (x, dy) = (x.materialize()?, dy.materialize()?);
    let dw = engine::weight_grad(geo, x.cpu_slice(op)?, dy.cpu_slice(op)?, op)?;
    Tensor::from_vec(dw, &[geo.out_channels, geo.group_channels(), geo.kernel[0], geo.kernel[1]])
}
