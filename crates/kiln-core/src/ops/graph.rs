//! Message passing over an edge list, the kernels of graph neural networks:
//! - `spmm`: a sparse (COO) adjacency with optional edge weights times a dense node matrix,
//!   out[dst[e]] += w[e] · x[src[e]], with gradients for x and for the weights;
//! - `segment_reduce`: sum / mean / max of the rows of values [E, ...] grouped by an unsorted id
//!   per row (the aggregation step of GraphSAGE-style layers), with gradients.
//!
//! This file validates, dispatches and records autograd; the CPU kernels (a stable counting sort
//! by output row, deterministic sums, no [E, F] message tensor) are device/cpu/graph.rs. Measured
//! against the same computation from gather + mul + scatterAdd: `cargo run --release -p kiln-core
//! --example spmm_choice`.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::tensor::Tensor;

pub use crate::params::graph::{expect_index, list_index_out_of_range, SegmentReduce};

/// spmm's checks on (shape, dtype) of x, src, dst, weight -> edges; the GPU kernels share it.
pub fn spmm_edges(x: (&[usize], DType), src: (&[usize], DType), dst: (&[usize], DType), weight: Option<(&[usize], DType)>) -> Result<usize> {
    const OP: &str = "spmm";
    let (x_shape, x_dtype) = x;
    if x_dtype != DType::F32 || x_shape.is_empty() {
        return Err(KilnError::new(OP, format!("x must be float32 [nodes, ...features], got {} {}", x_dtype, fmt_shape(x_shape))));
    }
    let edges = src.0.first().copied().unwrap_or(0);
    expect_index(OP, "src", src, edges)?;
    expect_index(OP, "dst", dst, edges)?;
    if let Some((w_shape, w_dtype)) = weight {
        if w_dtype != DType::F32 || w_shape != [edges] {
            return Err(KilnError::new(OP, format!("weight must be float32 [{edges}] (one per edge), got {} {}", w_dtype, fmt_shape(w_shape))));
        }
    }
    Ok(edges)
}

/// Sparse-dense product over an edge list: out[dst[e]] += weight[e] · x[src[e]] (weight 1 when
/// None). x: float32 [N, ...f], src, dst: int32 [E] (src in [0, N), dst in [0, num_out)),
/// weight: float32 [E] -> [num_out, ...f]. With A[d, s] = Σ weight over edges s -> d, this is A·x.
/// Gradients: x gets Aᵀ·g (the same kernel, edges reversed), weight gets <g[dst[e]], x[src[e]]>.
pub fn spmm(x: &Tensor, src: &Tensor, dst: &Tensor, weight: Option<&Tensor>, num_out: usize) -> Result<Tensor> {
    const OP: &str = "spmm";
    spmm_edges(
        (x.shape(), x.dtype()),
        (src.shape(), src.dtype()),
        (dst.shape(), dst.dtype()),
        weight.map(|w| (w.shape(), w.dtype())),
    )?;
    let n_in = x.shape()[0];
    let mut on_device = vec![x, src, dst];
    on_device.extend(weight);
    // Edge indices are checked by the device (the CPU at once, the GPU at the next readback).
    let dev = crate::device::dispatch(OP, &on_device)?;
    let out = dev.spmm(x, src, dst, weight, num_out)?;
    let mut inputs = vec![x];
    inputs.extend(weight);
    Ok(autograd::record(OP, &inputs, &on_device, out, move |g, saved, needs| {
        let (x, src, dst, w) = (&saved[0], &saved[1], &saved[2], saved.get(3));
        // x's gradient is Aᵀ g: the same product over the reversed edges.
        let dx = if needs[0] { Some(dev.spmm(g, dst, src, w, n_in)?) } else { None };
        let mut grads = vec![dx];
        if w.is_some() {
            grads.push(if needs[1] { Some(dev.spmm_weight_grad(x, src, dst, g)?) } else { None });
        }
        Ok(grads)
    }))
}

/// segmentReduce's check on the values -> rows (ids: expect_index); the GPU kernels share it.
pub fn segment_reduce_rows(values_shape: &[usize], values_dtype: DType) -> Result<usize> {
    if values_dtype != DType::F32 || values_shape.is_empty() {
        return Err(KilnError::new("segmentReduce", format!("values must be float32 [rows, ...features], got {} {}", values_dtype, fmt_shape(values_shape))));
    }
    Ok(values_shape[0])
}

/// Reduces the rows of values [E, ...f] that share a segment id: ids int32 [E] in
/// [0, num_segments), in any order -> [num_segments, ...f]. Sum, mean, or max (gradient to the
/// first row holding the maximum); a segment with no rows gives 0. tfjs's unsortedSegmentSum
/// for `Sum`; PyG's scatter(reduce=...) for all three.
pub fn segment_reduce(values: &Tensor, ids: &Tensor, num_segments: usize, op: SegmentReduce) -> Result<Tensor> {
    const OP: &str = "segmentReduce";
    let rows = segment_reduce_rows(values.shape(), values.dtype())?;
    let dev = crate::device::dispatch(OP, &[values, ids])?;
    expect_index(OP, "segmentIds", (ids.shape(), ids.dtype()), rows)?;
    let (out, aux) = dev.segment_reduce(values, ids, num_segments, op)?;
    let values_shape = values.shape().to_vec();
    let mut saved = vec![ids];
    saved.extend(aux.as_ref());
    Ok(autograd::record(OP, &[values], &saved, out, move |g, saved, _| {
        Ok(vec![Some(dev.segment_reduce_backward(g, &saved[0], saved.get(1), op, &values_shape)?)])
    }))
}
