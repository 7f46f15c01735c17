//! The CPU as a device: `Cpu` implements the same `Device` trait as kiln-gpu's GPU, and its
//! kernels live here: SIMD loops (see `simd::multiversion!`) parallel over rayon on native and
//! over Kiln's worker pool on threaded WASM. An op validates, shapes and records autograd, then
//! makes one call on `device::dispatch(..)`, which is this device for CPU tensors. A kernel
//! file here knows slices and parameter structs (params/), never the ops.
//!
//! Every op family runs here, the recurrent layers (whose BPTT takes back the workspace its
//! forward kept, `device::RecurrentWorkspace`) and the quantized layers (the CPU is their only
//! device) included.

#[cfg(target_arch = "x86_64")]
pub mod gemm_avx512;
pub mod gemm_call;
#[cfg(target_arch = "wasm32")]
pub mod gemm_simd128;

pub(crate) mod attention;
pub(crate) mod batch_norm;
pub(crate) mod binary;
pub(crate) mod conv;
/// The NCHWc kernels on plain slices, for examples/cnn_convs.rs: not part of Kiln's API.
#[doc(hidden)]
pub use conv::nchwc::bench as nchwc_bench;
pub(crate) mod creation;
pub(crate) mod graph;
#[cfg(target_arch = "x86_64")]
mod exp_avx512;
#[cfg(target_arch = "x86_64")]
mod gelu_avx512;
pub(crate) mod layer_norm;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod quant;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod unary;

use super::{Device, RecurrentWorkspace};
use crate::dtype::DType;
use crate::error::Result;
use crate::params::attention::AttentionOptions;
use crate::params::batch_norm::BatchNorm;
use crate::params::binary::BinaryOp;
use crate::params::conv::{Activation, Epilogue, FilterSet, Geometry, Reorder};
use crate::params::graph::SegmentReduce;
use crate::params::loss::Reduction;
use crate::params::optim::{GradTransform, Rule};
use crate::params::pool::Plan;
use crate::params::quant::{Format, QuantWeights};
use crate::params::recurrent::{Cell, Grads, Needs, Weights};
use crate::params::reduce::ReduceOp;
use crate::params::unary::UnaryOp;
use crate::tensor::Tensor;
use std::sync::{Arc, OnceLock};

/// The CPU device. CPU tensors hold host buffers (not a `Buffer::Device`), so `Tensor::device()`
/// stays None for them; `device::dispatch` answers this device instead.
pub struct Cpu;

/// The one CPU device (an Arc, like every device, so backward closures can keep it).
pub fn device() -> Arc<dyn Device> {
    static CPU: OnceLock<Arc<dyn Device>> = OnceLock::new();
    CPU.get_or_init(|| Arc::new(Cpu)).clone()
}

impl Device for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }
    fn describe(&self) -> String {
        format!("{{\"name\":\"cpu\",\"threads\":{},\"simd\":\"{}\"}}", crate::parallel::num_threads(), crate::simd::level_name())
    }
    // CPU tensors are already on the host: moving one here or back is a contiguous copy at most.
    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        t.materialize()
    }
    fn download(&self, t: &Tensor) -> Result<Tensor> {
        t.materialize()
    }
    fn copy(&self, t: &Tensor) -> Result<Tensor> {
        t.materialize()
    }
    fn readbacks(&self) -> u64 {
        0
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn unary(&self, op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
        unary::forward(op, x, alpha)
    }
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
        unary::backward(op, x, y, g, alpha)
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        binary::binary(op, a, b)
    }
    fn where_(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        binary::where_(cond, a, b)
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
        matmul::matmul(a, b, transpose_a, transpose_b)
    }
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>, activation: Option<Activation>) -> Result<Tensor> {
        linear::forward(x, w, bias, residual, activation)
    }

    fn optim_step(&self, rule: Rule, transform: GradTransform, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor]) -> Result<()> {
        optim::step(rule, transform, param, grad, state)
    }

    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keep_dims: bool, correction: usize) -> Result<Tensor> {
        reduce::forward(op, x, axes, keep_dims, correction)
    }
    fn softmax(&self, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        softmax::forward(x, axis, log)
    }

    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        shape::cast(x, dtype)
    }
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        creation::full("full", shape, value, dtype)
    }
    fn gather(&self, x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor> {
        shape::gather(x, indices, axis)
    }
    fn scatter_add(&self, base: &Tensor, indices: &Tensor, updates: &Tensor, axis: usize) -> Result<Tensor> {
        shape::scatter_add(base, indices, updates, axis)
    }
    fn one_hot(&self, indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
        shape::one_hot(indices, depth, on, off)
    }
    fn concat(&self, tensors: &[Tensor], axis: usize) -> Result<Tensor> {
        shape::concat(tensors, axis)
    }
    fn pad(&self, x: &Tensor, paddings: &[(usize, usize)], value: f64) -> Result<Tensor> {
        shape::pad(x, paddings, value)
    }

    fn batch_norm(&self, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, running: Option<(&mut Tensor, &mut Tensor)>, options: BatchNorm) -> Result<(Tensor, Tensor)> {
        batch_norm::forward(x, weight, bias, running, options)
    }
    fn batch_norm_backward(&self, g: &Tensor, x: &Tensor, stats: &Tensor, weight: Option<&Tensor>, batch_stats: bool, need_input: bool) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        batch_norm::backward(g, x, stats, weight, batch_stats, need_input)
    }

    fn layer_norm(&self, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, axis: usize, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        layer_norm::forward(x, weight, bias, axis, eps)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<(Tensor, Tensor)> {
        attention::forward(q, k, v, mask, options)
    }
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, out: &Tensor, lse: &Tensor, g: &Tensor, options: &AttentionOptions) -> Result<[Tensor; 3]> {
        attention::backward(q, k, v, mask, out, lse, g, options)
    }

    #[allow(clippy::too_many_arguments)]
    fn recurrent(&self, cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, weights: &Weights, reverse: bool, keep: bool) -> Result<(Tensor, Option<RecurrentWorkspace>)> {
        recurrent::forward(cell, x, h0, c0, weights, reverse, keep)
    }
    fn recurrent_backward(&self, cell: Cell, workspace: RecurrentWorkspace, g: &Tensor, reverse: bool, needs: Needs) -> Result<Grads> {
        recurrent::backward(cell, workspace, g, reverse, needs)
    }

    fn quantized_linear(&self, x: &Tensor, weights: &QuantWeights, bias: Option<&Tensor>, int8_activations: bool, op: &str) -> Result<Tensor> {
        quant::layers::linear(x, weights, bias, int8_activations, op)
    }
    fn quantized_conv2d(&self, geo: &Geometry, x: &Tensor, weights: &QuantWeights, bias: Option<&Tensor>, int8_activations: bool, op: &str) -> Result<Tensor> {
        quant::layers::conv2d(geo, x, weights, bias, int8_activations, op)
    }
    fn quantize(&self, w: &Tensor, format: Format, op: &str) -> Result<(Tensor, Tensor)> {
        quant::codec::quantize(w, format, op)
    }
    fn dequantize(&self, weights: &QuantWeights, op: &str) -> Result<Tensor> {
        quant::codec::dequantize(weights, op)
    }

    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
        loss::forward(logits, targets, weights, smoothing, reduction)
    }
    fn cross_entropy_backward(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction, g: &Tensor) -> Result<Tensor> {
        loss::backward(logits, targets, weights, smoothing, reduction, g)
    }
    fn spmm(&self, x: &Tensor, src: &Tensor, dst: &Tensor, weight: Option<&Tensor>, num_out: usize) -> Result<Tensor> {
        graph::spmm(x, src, dst, weight, num_out)
    }
    fn spmm_weight_grad(&self, x: &Tensor, src: &Tensor, dst: &Tensor, g: &Tensor) -> Result<Tensor> {
        graph::spmm_weight_grad(x, src, dst, g)
    }
    fn segment_reduce(&self, values: &Tensor, ids: &Tensor, num_segments: usize, op: SegmentReduce) -> Result<(Tensor, Option<Tensor>)> {
        graph::segment_reduce(values, ids, num_segments, op)
    }
    fn segment_reduce_backward(&self, g: &Tensor, ids: &Tensor, saved: Option<&Tensor>, op: SegmentReduce, values_shape: &[usize]) -> Result<Tensor> {
        graph::segment_reduce_backward(g, ids, saved, op, values_shape)
    }

    fn conv2d_forward(&self, geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
        conv::forward(geo, x, w, bias, epilogue, op)
    }
    fn conv2d_concat_forward(&self, x: &Tensor, sets: &[FilterSet], op: &str) -> Result<Tensor> {
        conv::forward_concat(x, sets, op)
    }
    fn conv2d_nchwc_forward(&self, geo: &Geometry, x: &Tensor, packed: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
        conv::blocked::forward(geo, x, packed, bias, epilogue, op)
    }
    fn conv2d_nchwc_concat_forward(&self, x: &Tensor, sets: &[FilterSet], op: &str) -> Result<Tensor> {
        conv::blocked::forward_concat(x, sets, op)
    }
    fn max_pool2d_nchwc(&self, plan: &Plan, x: &Tensor) -> Result<Tensor> {
        conv::blocked::max_pool(plan, x, "maxPool2dNchwc")
    }
    fn avg_pool2d_nchwc(&self, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
        conv::blocked::avg_pool(plan, x, count_include_pad, "avgPool2dNchwc")
    }
    fn nchwc_reorder(&self, x: &Tensor, direction: Reorder, dims: [usize; 4], op: &str) -> Result<Tensor> {
        conv::blocked::reorder(x, direction, dims, op)
    }
    fn nchwc_pack_filters(&self, geo: &Geometry, w: &Tensor, op: &str) -> Result<Tensor> {
        conv::blocked::pack_filters(geo, w, op)
    }
    fn conv2d_input_grad(&self, geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
        conv::input_grad(geo, dy, w, init, op)
    }
    fn conv2d_weight_grad(&self, geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
        conv::weight_grad(geo, x, dy, op)
    }
    fn max_pool2d(&self, plan: &Plan, x: &Tensor, need_indices: bool) -> Result<(Tensor, Tensor)> {
        pool::max_pool2d(plan, x, need_indices)
    }
    fn max_pool2d_backward(&self, plan: &Plan, g: &Tensor, indices: &Tensor, in_shape: &[usize]) -> Result<Tensor> {
        pool::max_pool2d_backward(plan, g, indices, in_shape)
    }
    fn avg_pool2d(&self, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
        pool::avg_pool2d(plan, x, count_include_pad)
    }
    fn avg_pool2d_backward(&self, plan: &Plan, g: &Tensor, in_shape: &[usize], count_include_pad: bool) -> Result<Tensor> {
        pool::avg_pool2d_backward(plan, g, in_shape, count_include_pad)
    }
}
