//! The indexing, creation, loss and graph kernel families (kernels/index.rs, join.rs,
//! creation.rs, loss.rs, graph.rs) as kiln-core Device methods: each views its inputs as
//! GpuTensors, runs the kernel and wraps the result. Out-of-range indices are checked on the
//! device and reported by the next download or synchronize (checks.rs).

use super::GpuBackend;
use crate::kernels::graph::{self, SegmentSaved};
use crate::kernels::{creation, index, join, loss};
use crate::tensor::GpuTensor;
use kiln_core::ops::{Reduction, SegmentReduce};
use kiln_core::{DType, Result, Tensor};

fn opt(b: &GpuBackend, t: Option<&Tensor>) -> Result<Option<GpuTensor>> {
    t.map(|t| b.gpu(t)).transpose()
}

pub fn full(b: &GpuBackend, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
    Ok(b.wrap(creation::full(b.device(), shape, value, dtype)?))
}

pub fn gather(b: &GpuBackend, x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor> {
    Ok(b.wrap(index::gather(b.device(), &b.gpu(x)?, &b.gpu(indices)?, axis as isize)?))
}

pub fn scatter_add(b: &GpuBackend, base: &Tensor, indices: &Tensor, updates: &Tensor, axis: usize) -> Result<Tensor> {
    Ok(b.wrap(index::scatter_add(b.device(), &b.gpu(base)?, &b.gpu(indices)?, &b.gpu(updates)?, axis as isize)?))
}

pub fn one_hot(b: &GpuBackend, indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
    Ok(b.wrap(index::one_hot(b.device(), &b.gpu(indices)?, depth, on, off)?))
}

pub fn concat(b: &GpuBackend, tensors: &[Tensor], axis: usize) -> Result<Tensor> {
    let ts: Vec<GpuTensor> = tensors.iter().map(|t| b.gpu(t)).collect::<Result<_>>()?;
    Ok(b.wrap(join::concat(b.device(), &ts, axis as isize)?))
}

pub fn pad(b: &GpuBackend, x: &Tensor, paddings: &[(usize, usize)], value: f64) -> Result<Tensor> {
    Ok(b.wrap(join::pad(b.device(), &b.gpu(x)?, paddings, value)?))
}

pub fn cross_entropy(b: &GpuBackend, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
    let y = loss::cross_entropy(b.device(), &b.gpu(logits)?, &b.gpu(targets)?, opt(b, weights)?.as_ref(), smoothing, reduction)?;
    Ok(b.wrap(y))
}

pub fn cross_entropy_backward(b: &GpuBackend, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction, g: &Tensor) -> Result<Tensor> {
    let w = opt(b, weights)?;
    let gx = loss::cross_entropy_backward(b.device(), &b.gpu(logits)?, &b.gpu(targets)?, w.as_ref(), smoothing, reduction, &b.gpu(g)?)?;
    Ok(b.wrap(gx))
}

pub fn spmm(b: &GpuBackend, x: &Tensor, src: &Tensor, dst: &Tensor, weight: Option<&Tensor>, num_out: usize) -> Result<Tensor> {
    let w = opt(b, weight)?;
    Ok(b.wrap(graph::spmm(b.device(), &b.gpu(x)?, &b.gpu(src)?, &b.gpu(dst)?, w.as_ref(), num_out)?))
}

pub fn spmm_weight_grad(b: &GpuBackend, x: &Tensor, src: &Tensor, dst: &Tensor, g: &Tensor) -> Result<Tensor> {
    Ok(b.wrap(graph::spmm_weight_grad(b.device(), &b.gpu(x)?, &b.gpu(src)?, &b.gpu(dst)?, &b.gpu(g)?)?))
}

pub fn segment_reduce(b: &GpuBackend, values: &Tensor, ids: &Tensor, num_segments: usize, op: SegmentReduce) -> Result<(Tensor, Option<Tensor>)> {
    let (out, saved) = graph::segment_reduce(b.device(), &b.gpu(values)?, &b.gpu(ids)?, num_segments, op)?;
    let aux = match saved {
        SegmentSaved::None => None,
        SegmentSaved::Counts(t) | SegmentSaved::Winners(t) => Some(b.wrap(t)),
    };
    Ok((b.wrap(out), aux))
}

pub fn segment_reduce_backward(b: &GpuBackend, g: &Tensor, ids: &Tensor, saved: Option<&Tensor>, op: SegmentReduce, values_shape: &[usize]) -> Result<Tensor> {
    let saved = match (op, saved) {
        (SegmentReduce::Mean, Some(t)) => SegmentSaved::Counts(b.gpu(t)?),
        (SegmentReduce::Max, Some(t)) => SegmentSaved::Winners(b.gpu(t)?),
        _ => SegmentSaved::None,
    };
    Ok(b.wrap(graph::segment_reduce_backward(b.device(), &b.gpu(g)?, &b.gpu(ids)?, &saved, values_shape)?))
}
