//! The quantized layers on the CPU (`Cpu`'s `quantized_linear` and `quantized_conv2d`): tensors
//! in, host slices to the kernels, a tensor out. Weight-only products expand rows into float
//! tiles (rows.rs) for the Linear kernel (linear.rs) or conv2d's im2col + GEMM engine, or, for
//! the convolutions direct.rs serves, into its forward tiles a block of channels at a time
//! (tile_filters.rs); W8A8 products go to w8a8.rs.
//!
//! On im2col + GEMM, the conv's filters are expanded a tile of at most TILE_ROWS output channels at a time into
//! the worker's scratch, next to its im2col band: the f32 weight is never whole. The tile is
//! expanded again for every (image, band) unit: that is O(out_channels · patch) per unit against
//! the GEMM's O(out_channels · patch · band columns), under 2% for bands of 64+ output
//! positions, and it keeps the memory bound independent of the layer's size.

use super::packed::Int8Weights;
use super::rows::RowSource;
use crate::device::cpu::conv::engine::{self, gemm, Filters, Mat};
use crate::device::cpu::gemm_call::Parallelism;
use crate::error::Result;
use crate::layout::checked_numel;
use crate::params::conv::Geometry;
use crate::params::quant::{Format, QuantWeights};
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;
use std::ops::Range;

/// x [..., I] · Wᵀ + bias -> [..., O] (shapes checked by ops/quant/linear.rs).
pub(crate) fn linear(x: &Tensor, w: &QuantWeights, bias: Option<&Tensor>, int8_activations: bool, op: &str) -> Result<Tensor> {
    let (x, q, scales) = (x.materialize()?, w.q.materialize()?, w.scales.materialize()?);
    let (in_features, out_features) = (w.in_features, q.shape()[0]);
    let rows = x.numel() / in_features.max(1);
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(out_features);
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &out_shape)?)?;
    let bias = bias.map(|b| b.elements::<f32>(op)).transpose()?;
    let (xs, qs, ss) = (x.cpu_slice::<f32>(op)?, q.cpu_slice::<i8>(op)?, scales.cpu_slice::<f32>(op)?);
    if rows > 0 && out_features > 0 {
        if int8_activations {
            // Packed once per weight and kept with it (packed.rs): no per-call packing.
            let packed = Int8Weights::of_linear(&q, out_features, in_features)?;
            super::w8a8::linear(xs, rows, in_features, qs, &packed, ss, bias.as_deref(), &mut out);
        } else {
            // The int4 re-layout serves the few-row dots only: a model run only on large batches
            // never builds it.
            let int4_runs = match w.format {
                Format::Int4 { block } if rows <= super::linear::DOT_MAX_ROWS => super::nibbles::of(&q, out_features, in_features, block)?,
                _ => None,
            };
            let weights = RowSource { format: w.format, q: qs, scales: ss, in_features, int4_runs: int4_runs.as_deref() };
            super::linear::forward(xs, rows, &weights, bias.as_deref(), &mut out, out_features);
        }
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &out_shape))
}

/// Cross-correlation on `geo` with quantized filters (a row of `w` per output channel, the
/// groups' filters one after another) -> [N, O, OH, OW].
pub(crate) fn conv2d(geo: &Geometry, x: &Tensor, w: &QuantWeights, bias: Option<&Tensor>, int8_activations: bool, op: &str) -> Result<Tensor> {
    let (x, q, scales) = (x.materialize()?, w.q.materialize()?, w.scales.materialize()?);
    let bias = bias.map(|b| b.elements::<f32>(op)).transpose()?;
    let (xs, qs, ss) = (x.cpu_slice::<f32>(op)?, q.cpu_slice::<i8>(op)?, scales.cpu_slice::<f32>(op)?);
    let out = if int8_activations {
        let filters = super::w8a8::conv_filters(geo, &q)?;
        super::w8a8::conv(geo, xs, &filters, ss, bias.as_deref(), op)?
    } else if let Some(out) = direct_forward(geo, xs, w, &q, ss, bias.as_deref(), op)? {
        out
    } else {
        let filters = Tiles { rows: RowSource { format: w.format, q: qs, scales: ss, in_features: w.in_features, int4_runs: None } };
        engine::forward(geo, xs, &filters, bias.as_deref(), op)?
    };
    Tensor::from_vec(out, &[geo.batch, geo.out_channels, geo.out_height, geo.out_width])
}

#[cfg(target_arch = "x86_64")]
use super::tile_filters::forward as direct_forward;

/// direct.rs (and so tile_filters.rs) exists only on x86-64.
#[cfg(not(target_arch = "x86_64"))]
fn direct_forward(_: &Geometry, _: &[f32], _: &QuantWeights, _: &Tensor, _: &[f32], _: Option<&[f32]>, _: &str) -> Result<Option<Vec<f32>>> {
    Ok(None)
}

/// Quantized filters for the conv engine, expanded a tile of output channels at a time.
struct Tiles<'a> {
    rows: RowSource<'a>,
}

impl Filters for Tiles<'_> {
    fn scratch_len(&self, geo: &Geometry) -> usize {
        self.rows.tile_len(geo.group_out_channels())
    }

    unsafe fn apply(&self, geo: &Geometry, grp: usize, rows: Range<usize>, x: Mat, dst: *mut f32, dst_stride: usize, accumulate: bool, tile: &mut [f32], par: Parallelism) {
        let patch = geo.patch();
        let first = grp * geo.group_out_channels() + rows.start;
        self.rows.for_each_tile(first..first + rows.len(), tile, |t0, width, tile| {
            // SAFETY: the tile's output channels are rows of the caller's dst range.
            unsafe { gemm(dst.add((t0 - first) * dst_stride), dst_stride, accumulate, Mat::new(tile, width, patch, patch), x, par) };
        });
    }
}
