//! 2-D convolution on quantized filters: validation and geometry (conv2d's checks and
//! messages), then one call on the inputs' device (on the CPU: device/cpu/quant/layers.rs, the
//! im2col + GEMM engine with filters expanded a tile at a time, or w8a8.rs).

use super::{checked_weights, operands, refuse_gradients, Format};
use crate::device;
use crate::error::{fmt_shape, KilnError, Result};
use crate::ops::conv::{check_input, conv2d_geometry_of, ConvParams};
use crate::tensor::Tensor;

/// Cross-correlation as conv2d with int8 filters. input [N, C, H, W] float32, q [O, C/groups ·
/// kh · kw] int8 (a filter per row, flattened as [C/groups, kh, kw]), scales [O], bias [O] or
/// None -> [N, O, OH, OW]. `kernel` is [kh, kw], which the rows do not record.
/// Inference-only: errors if a gradient would be needed.
pub fn conv2d_q8(input: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams) -> Result<Tensor> {
    conv("conv2dQ8", input, q, scales, bias, kernel, p, Format::Int8, false)
}

/// As `conv2d_q8`, with the input quantized too: each input image to int8 with scale
/// max|image| / 127, products summed exactly in i32 (device/cpu/quant/w8a8.rs). Inference-only.
pub fn conv2d_w8a8(input: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams) -> Result<Tensor> {
    conv("conv2dW8A8", input, q, scales, bias, kernel, p, Format::Int8, true)
}

/// conv2d with int4 filters in blocks of `block` along each row. packed [O, ceil(patch/2)] int8,
/// scales [O, ceil(patch/block)] with patch = C/groups · kh · kw; otherwise as `conv2d_q8`.
pub fn conv2d_q4(input: &Tensor, packed: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams, block: usize) -> Result<Tensor> {
    conv("conv2dQ4", input, packed, scales, bias, kernel, p, Format::int4("conv2dQ4", block)?, false)
}

#[allow(clippy::too_many_arguments)]
fn conv(op: &str, input: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams, format: Format, int8_activations: bool) -> Result<Tensor> {
    let [kh, kw] = kernel;
    let what = format!("weights {} {} and scales {} {} for a {kh}x{kw} kernel", q.dtype(), fmt_shape(q.shape()), scales.dtype(), fmt_shape(scales.shape()));
    check_input(op, input, &what)?;
    if p.groups == 0 {
        return Err(KilnError::new(op, format!("groups must be >= 1, got 0 (input {})", fmt_shape(input.shape()))));
    }
    let group_channels = input.shape()[1] / p.groups;
    let patch = group_channels.checked_mul(kh).and_then(|v| v.checked_mul(kw));
    let patch = patch.ok_or_else(|| KilnError::new(op, format!("kernel {kh}x{kw} is too large ({what})")))?;
    let weights = checked_weights(op, q, scales, format, patch).map_err(|e| {
        KilnError::new(op, format!(
            "{} (one row per filter of {group_channels} input channels x {kh}x{kw} taps = {patch} weights; input {} {}, groups {})",
            e.message, input.dtype(), fmt_shape(input.shape()), p.groups
        ))
    })?;
    let geo = conv2d_geometry_of(op, input, [q.shape()[0], group_channels, kh, kw], &what, bias, p)?;
    refuse_gradients(op, input, &[Some(scales), bias])?;
    device::dispatch(op, &operands(input, &weights, bias))?.quantized_conv2d(&geo, input, &weights, bias, int8_activations, op)
}
