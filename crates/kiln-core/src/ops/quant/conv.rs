//! 2-D convolution on quantized filters: conv2d's im2col + GEMM engine (ops/conv/engine.rs),
//! with each group's filters expanded a tile of at most TILE_ROWS output channels at a time into
//! the worker's scratch, next to its im2col band. The f32 weight is never whole: a worker holds
//! one band and one tile, and each tile is consumed by the GEMM before the next is expanded.
//!
//! The tile is expanded again for every (image, band) unit: that is O(out_channels · patch) per
//! unit against the GEMM's O(out_channels · patch · band columns), under 2% for bands of 64+
//! output positions, and it keeps the memory bound independent of the layer's size.

use crate::device::cpu::quant::rows::RowSource;
use super::{bias_values, checked_weights, refuse_gradients, Format};
use crate::error::{fmt_shape, KilnError, Result};
use crate::device::cpu::gemm_call::Parallelism;
use crate::device::cpu::conv::engine::{self, gemm, Filters, Mat};
use crate::ops::conv::{check_input, conv2d_geometry_of, ConvParams, Geometry};
use crate::tensor::Tensor;

/// Cross-correlation as conv2d with int8 filters. input [N, C, H, W] float32, q [O, C/groups ·
/// kh · kw] int8 (a filter per row, flattened as [C/groups, kh, kw]), scales [O], bias [O] or
/// None -> [N, O, OH, OW]. `kernel` is [kh, kw], which the rows do not record.
/// Inference-only: errors if a gradient would be needed.
pub fn conv2d_q8(input: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams) -> Result<Tensor> {
    crate::device::cpu_only("conv2dQ8", &[Some(input), Some(q), Some(scales), bias])?;
    conv(input, q, scales, bias, kernel, p, Format::Int8, false)
}

/// As `conv2d_q8`, with the input quantized too: each input image to int8 with scale
/// max|image| / 127, products summed exactly in i32 (device/cpu/quant/w8a8.rs). Inference-only.
pub fn conv2d_w8a8(input: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams) -> Result<Tensor> {
    crate::device::cpu_only("conv2dW8A8", &[Some(input), Some(q), Some(scales), bias])?;
    conv(input, q, scales, bias, kernel, p, Format::Int8, true)
}

/// conv2d with int4 filters in blocks of `block` along each row. packed [O, ceil(patch/2)] int8,
/// scales [O, ceil(patch/block)] with patch = C/groups · kh · kw; otherwise as `conv2d_q8`.
pub fn conv2d_q4(input: &Tensor, packed: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams, block: usize) -> Result<Tensor> {
    crate::device::cpu_only("conv2dQ4", &[Some(input), Some(packed), Some(scales), bias])?;
    conv(input, packed, scales, bias, kernel, p, Format::int4("conv2dQ4", block)?, false)
}

#[allow(clippy::too_many_arguments)]
fn conv(input: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, kernel: [usize; 2], p: &ConvParams, format: Format, int8_input: bool) -> Result<Tensor> {
    let op = match (format, int8_input) {
        (_, true) => "conv2dW8A8",
        (Format::Int8, false) => "conv2dQ8",
        _ => "conv2dQ4",
    };
    let [kh, kw] = kernel;
    let what = format!("weights {} {} and scales {} {} for a {kh}x{kw} kernel", q.dtype(), fmt_shape(q.shape()), scales.dtype(), fmt_shape(scales.shape()));
    check_input(op, input, &what)?;
    if p.groups == 0 {
        return Err(KilnError::new(op, format!("groups must be >= 1, got 0 (input {})", fmt_shape(input.shape()))));
    }
    let group_channels = input.shape()[1] / p.groups;
    let patch = group_channels.checked_mul(kh).and_then(|v| v.checked_mul(kw));
    let patch = patch.ok_or_else(|| KilnError::new(op, format!("kernel {kh}x{kw} is too large ({what})")))?;
    let (q, scales) = checked_weights(op, q, scales, format, patch).map_err(|e| {
        KilnError::new(op, format!(
            "{} (one row per filter of {group_channels} input channels x {kh}x{kw} taps = {patch} weights; input {} {}, groups {})",
            e.message, input.dtype(), fmt_shape(input.shape()), p.groups
        ))
    })?;
    let geo = conv2d_geometry_of(op, input, [q.shape()[0], group_channels, kh, kw], &what, bias, p)?;
    refuse_gradients(op, input, &[Some(&scales), bias])?;
    let bias = bias_values(op, bias)?;
    let x = input.materialize()?;
    let filters = if int8_input { Some(crate::device::cpu::quant::w8a8::conv_filters(&geo, &q)?) } else { None };
    let (q, scales) = (q.contiguous_slice::<i8>().unwrap(), scales.contiguous_slice::<f32>().unwrap());
    let x = x.contiguous_slice::<f32>().expect("materialized float32");
    let out = if let Some(filters) = filters {
        crate::device::cpu::quant::w8a8::conv(&geo, x, &filters, scales, bias.as_deref(), op)?
    } else {
        engine::forward(&geo, x, &Packed { rows: RowSource { format, q, scales, in_features: patch, int4_runs: None } }, bias.as_deref(), op)?
    };
    Tensor::from_vec(out, &[geo.batch, geo.out_channels, geo.out_height, geo.out_width])
}

/// Quantized filters, one row per output channel, groups' filters one after another.
struct Packed<'a> {
    rows: RowSource<'a>,
}

impl Filters for Packed<'_> {
    fn scratch_len(&self, geo: &Geometry) -> usize {
        self.rows.tile_len(geo.group_out_channels())
    }

    unsafe fn apply(&self, geo: &Geometry, grp: usize, x: Mat, dst: *mut f32, dst_stride: usize, accumulate: bool, tile: &mut [f32], par: Parallelism) {
        let (cout, patch) = (geo.group_out_channels(), geo.patch());
        let first = grp * cout;
        self.rows.for_each_tile(first..first + cout, tile, |t0, width, tile| {
            // SAFETY: the tile's output channels are rows of the caller's dst range.
            unsafe { gemm(dst.add((t0 - first) * dst_stride), dst_stride, accumulate, Mat::new(tile, width, patch, patch), x, par) };
        });
    }
}
