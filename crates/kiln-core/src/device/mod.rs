//! Devices: the CPU (cpu/, its kernels) and the GPU (kiln-gpu implements `Device`). A tensor on
//! the GPU holds a `Buffer::Device`: an opaque buffer that knows its device; a CPU tensor holds a
//! host buffer. An op validates its inputs, makes one call on `dispatch(..)` (the inputs' device,
//! the CPU for host tensors) and records autograd; backward closures dispatch the same way, so
//! every gradient rule runs on the device its tensors live on. See docs/architecture.md.
//!
//! kiln-core knows nothing of wgpu: kiln-gpu implements `Device` and the bindings hand its
//! instance to the ops through the tensors they upload (`to_device`).

use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
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
use std::any::Any;

pub mod cpu;
use std::sync::Arc;

/// A device's buffer, owned by a Storage like a CPU Vec. Dropping it returns the memory to the
/// device (kiln-gpu's pool).
pub trait DeviceBuffer: Send + Sync {
    fn dtype(&self) -> DType;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn device(&self) -> Arc<dyn Device>;
    /// For the device's own kernels, to reach their concrete buffer type.
    fn as_any(&self) -> &dyn Any;
}

/// What a device's recurrent forward keeps for its BPTT (x and the weights in the layout its
/// kernels read, gate activations, states): only that device knows the type. The op's autograd
/// node owns it and hands it back by value to the same device's `recurrent_backward`, so the
/// CPU may overwrite it in place and the GPU may keep buffers, each without the other's layout.
/// Its tensors are ordinary tensors, so `kiln.memory()` counts them while a graph holds them.
pub type RecurrentWorkspace = Box<dyn Any + Send>;

/// The error of a kernel a device does not have (yet): clear, never a panic.
pub fn no_kernel(device: &str, op: &str) -> KilnError {
    KilnError::new(op, format!("has no kernel on the {device} device yet; move the tensors to the CPU with .to('cpu') for this op"))
}

/// The kernels a device runs, one method per kernel family. Inputs have been validated by the
/// op (shapes, dtypes); they are on this device, except 1-element CPU tensors (constants inside
/// backward closures), which the device uploads itself. Results are on this device. Each
/// method has a default that reports a missing kernel.
pub trait Device: Send + Sync {
    /// Short name used in messages and by the bindings ("gpu").
    fn name(&self) -> &str;
    /// What the device is, for `gpuInfo()` (adapter, driver, limits), as JSON.
    fn describe(&self) -> String;

    /// Copies a CPU tensor (any layout) to this device: a contiguous device tensor.
    fn upload(&self, t: &Tensor) -> Result<Tensor>;
    /// Copies a device tensor back: a contiguous CPU tensor. Waits for pending kernels; this
    /// is the only place a device's results reach the host (the bindings count these).
    fn download(&self, t: &Tensor) -> Result<Tensor>;
    /// A contiguous copy on the device (kernels' `materialize`).
    fn copy(&self, t: &Tensor) -> Result<Tensor>;
    /// Readbacks (downloads) so far: tests show a training step makes none.
    fn readbacks(&self) -> u64;
    /// Waits until every submitted kernel has finished (and reports a failure if one did).
    fn synchronize(&self) -> Result<()>;

    fn unary(&self, op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
        let _ = (x, alpha);
        Err(no_kernel(self.name(), op.name()))
    }
    /// g * dy/dx for y = op(x).
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
        let _ = (x, y, g, alpha);
        Err(no_kernel(self.name(), op.name()))
    }
    /// Broadcasting `op(a, b)`; float32 inputs (comparisons give bool).
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let _ = (a, b);
        Err(no_kernel(self.name(), op.name()))
    }
    fn where_(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let _ = (cond, a, b);
        Err(no_kernel(self.name(), "where"))
    }
    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let _ = (x, dtype);
        Err(no_kernel(self.name(), "cast"))
    }
    /// `axes` are normalized (sorted, distinct); argmax/argmin get at most one.
    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keep_dims: bool, correction: usize) -> Result<Tensor> {
        let _ = (x, axes, keep_dims, correction);
        Err(no_kernel(self.name(), op.name()))
    }
    fn softmax(&self, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        let _ = (x, axis);
        Err(no_kernel(self.name(), if log { "logSoftmax" } else { "softmax" }))
    }
    fn softmax_backward(&self, y: &Tensor, g: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        let _ = (y, g, axis);
        Err(no_kernel(self.name(), if log { "logSoftmax" } else { "softmax" }))
    }
    /// Batched matmul with broadcast batch dims; shapes checked by the op.
    fn matmul(&self, a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
        let _ = (a, b, transpose_a, transpose_b);
        Err(no_kernel(self.name(), "matmul"))
    }
    /// activation(x [..., K] · Wᵀ + bias + residual) -> [..., N] (see ops::linear; the
    /// activation only under inference, ops::linear_activated): the CPU starts its GEMM from the
    /// bias and residual and applies the activation to each block it computes; a device may run
    /// `ops::linear::composed` (matmul, adds, the unary op) on its own kernels.
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>, activation: Option<Activation>) -> Result<Tensor> {
        let _ = (x, w, bias, residual, activation);
        Err(no_kernel(self.name(), "linear"))
    }
    /// An optimizer update in place (copy-on-write): `param` and `state` get new contents.
    fn optim_step(&self, rule: Rule, transform: GradTransform, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor]) -> Result<()> {
        let _ = (transform, param, grad, state);
        Err(no_kernel(self.name(), rule.name()))
    }

    // CNN family (conv, pooling, batch norm): the passes of kiln-core's CPU kernels, same parameters.
    /// Convolution forward on `geo` (conv/engine.rs `forward`): [N, O, OH, OW], plus `bias` [O],
    /// then the epilogue: the residual [N, O, OH, OW] added and the activation applied (fused
    /// where the device can).
    fn conv2d_forward(&self, geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
        let _ = (geo, x, w, bias, epilogue);
        Err(no_kernel(self.name(), op))
    }
    /// Several convolutions of `x` (`sets`, checked to share the output's height and width), their
    /// outputs concatenated on channels: [N, ΣO, OH, OW]. This default runs each convolution and
    /// concatenates; the CPU writes each straight into its channel slice (no concat pass).
    fn conv2d_concat_forward(&self, x: &Tensor, sets: &[FilterSet], op: &str) -> Result<Tensor> {
        let outs = sets
            .iter()
            .map(|s| self.conv2d_forward(&s.geo, x, s.weight, s.bias, Epilogue { residual: None, activation: s.activation }, op))
            .collect::<Result<Vec<_>>>()?;
        self.concat(&outs, 1)
    }
    /// conv2dNchwc (ops/conv_nchwc.rs): `geo` with Cb·16 input and Ob·16 output channels; x
    /// [N, Cb, H, W, 16], `packed` [Ob, Cb, KH, KW, 16, 16], `bias` [O] (O within Ob blocks) ->
    /// [N, Ob, OH, OW, 16], then the epilogue (the residual in that layout).
    fn conv2d_nchwc_forward(&self, geo: &Geometry, x: &Tensor, packed: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
        let _ = (geo, x, packed, bias, epilogue);
        Err(no_kernel(self.name(), op))
    }
    /// conv2dNchwcConcat: each set (`weight`: packed filters) convolved as conv2d_nchwc_forward,
    /// the outputs side by side on the block axis. This default runs each and concatenates; the
    /// CPU writes each straight into its blocks of the result.
    fn conv2d_nchwc_concat_forward(&self, x: &Tensor, sets: &[FilterSet], op: &str) -> Result<Tensor> {
        let outs = sets
            .iter()
            .map(|s| self.conv2d_nchwc_forward(&s.geo, x, s.weight, s.bias, Epilogue { residual: None, activation: s.activation }, op))
            .collect::<Result<Vec<_>>>()?;
        self.concat(&outs, 1)
    }
    /// maxPool2dNchwc: `plan` over Cb planes of 16-value pixels, x [N, Cb, H, W, 16] -> [N, Cb, OH, OW, 16].
    fn max_pool2d_nchwc(&self, plan: &Plan, x: &Tensor) -> Result<Tensor> {
        let _ = (plan, x);
        Err(no_kernel(self.name(), "maxPool2dNchwc"))
    }
    /// avgPool2dNchwc: as max_pool2d_nchwc, averages with avgPool2d's divisors.
    fn avg_pool2d_nchwc(&self, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
        let _ = (plan, x, count_include_pad);
        Err(no_kernel(self.name(), "avgPool2dNchwc"))
    }
    /// NCHW <-> NCHWc; `dims` [N, C, H, W] are the plain side's.
    fn nchwc_reorder(&self, x: &Tensor, direction: Reorder, dims: [usize; 4], op: &str) -> Result<Tensor> {
        let _ = (x, direction, dims);
        Err(no_kernel(self.name(), op))
    }
    /// A weight `geo.out_channels` x `geo.channels` x kernel, packed for conv2d_nchwc_forward.
    fn nchwc_pack_filters(&self, geo: &Geometry, w: &Tensor, op: &str) -> Result<Tensor> {
        let _ = (geo, w);
        Err(no_kernel(self.name(), op))
    }
    /// The convolution's input gradient from `dy` (engine `input_grad`), plus `init` [C]
    /// per channel: also a conv-transpose's forward.
    fn conv2d_input_grad(&self, geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
        let _ = (geo, dy, w, init);
        Err(no_kernel(self.name(), op))
    }
    /// The convolution's weight gradient (engine `weight_grad`): [O, C/groups, kh, kw].
    fn conv2d_weight_grad(&self, geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
        let _ = (geo, x, dy);
        Err(no_kernel(self.name(), op))
    }
    /// (maxima, first argmax per window as int32 indices into its input plane). Without
    /// `need_indices` (no gradient wanted) a device may return an empty index tensor.
    fn max_pool2d(&self, plan: &Plan, x: &Tensor, need_indices: bool) -> Result<(Tensor, Tensor)> {
        let _ = (plan, x, need_indices);
        Err(no_kernel(self.name(), "maxPool2d"))
    }
    fn max_pool2d_backward(&self, plan: &Plan, g: &Tensor, indices: &Tensor, in_shape: &[usize]) -> Result<Tensor> {
        let _ = (plan, g, indices, in_shape);
        Err(no_kernel(self.name(), "maxPool2d"))
    }
    fn avg_pool2d(&self, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
        let _ = (plan, x, count_include_pad);
        Err(no_kernel(self.name(), "avgPool2d"))
    }
    fn avg_pool2d_backward(&self, plan: &Plan, g: &Tensor, in_shape: &[usize], count_include_pad: bool) -> Result<Tensor> {
        let _ = (plan, g, in_shape, count_include_pad);
        Err(no_kernel(self.name(), "avgPool2d"))
    }
    /// (y, saved statistics [2, C]: mean and 1/sqrt(var + eps)); in training the running
    /// statistics are updated in place (copy-on-write).
    fn batch_norm(&self, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, running: Option<(&mut Tensor, &mut Tensor)>, options: BatchNorm) -> Result<(Tensor, Tensor)> {
        let _ = (x, weight, bias, running, options);
        Err(no_kernel(self.name(), "batchNorm"))
    }
    /// (dx when `need_input`, dweight = sum g*xhat [C], dbias = sum g [C]).
    fn batch_norm_backward(&self, g: &Tensor, x: &Tensor, stats: &Tensor, weight: Option<&Tensor>, batch_stats: bool, need_input: bool) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        let _ = (g, x, stats, weight, batch_stats, need_input);
        Err(no_kernel(self.name(), "batchNorm"))
    }

    /// Layer normalization over the dims from `axis` on (see ops::layer_norm): (y, mean,
    /// 1/√(var + eps)), the statistics keeping x's rank. The CPU has a fused kernel; a device
    /// may run `ops::layer_norm::composed` (reductions, elementwise ops) on its own kernels.
    fn layer_norm(&self, x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, axis: usize, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        let _ = (x, weight, bias, axis, eps);
        Err(no_kernel(self.name(), "layerNorm"))
    }

    // Transformer and RNN family: fused attention and recurrent layers.
    /// Fused attention forward (see ops::attention): q, k, v [B, H, T, D] (any strides), the raw
    /// key padding mask (bool or float32 [B, Tk]) and options with the dropout seed resolved.
    /// Returns the output [B, H, Tq, Dv] and the row log-normalizers lse [B, H, Tq].
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<(Tensor, Tensor)> {
        let _ = (q, k, v, mask, options);
        Err(no_kernel(self.name(), "attention"))
    }
    /// The gradients of q, k and v from the forward's inputs, its `out` and `lse`, and the output gradient `g`.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, out: &Tensor, lse: &Tensor, g: &Tensor, options: &AttentionOptions) -> Result<[Tensor; 3]> {
        let _ = (q, k, v, mask, out, lse, g, options);
        Err(no_kernel(self.name(), "attention"))
    }
    /// One recurrent layer and direction over a sequence (see ops::recurrent): the packed
    /// output, and with `keep` (a gradient will be asked for) what this device's BPTT needs.
    #[allow(clippy::too_many_arguments)]
    fn recurrent(&self, cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, weights: &Weights, reverse: bool, keep: bool) -> Result<(Tensor, Option<RecurrentWorkspace>)> {
        let _ = (x, h0, c0, weights, reverse, keep);
        Err(no_kernel(self.name(), cell.name()))
    }
    /// BPTT from the workspace this device's `recurrent` kept (consumed: the CPU overwrites
    /// its activations with their gradients in place) and the packed output's gradient `g`;
    /// only the gradients `needs` asks for.
    fn recurrent_backward(&self, cell: Cell, workspace: RecurrentWorkspace, g: &Tensor, reverse: bool, needs: Needs) -> Result<Grads> {
        let _ = (workspace, g, reverse, needs);
        Err(no_kernel(self.name(), cell.name()))
    }

    // Quantized layers (inference only; see ops::quant for the formats).
    /// x [..., I] · Wᵀ + bias -> [..., O] on quantized weights; with `int8_activations` each
    /// input row is quantized to int8 too (W8A8). `op` names the entry the user called.
    fn quantized_linear(&self, x: &Tensor, weights: &QuantWeights, bias: Option<&Tensor>, int8_activations: bool, op: &str) -> Result<Tensor> {
        let _ = (x, weights, bias, int8_activations);
        Err(no_kernel(self.name(), op))
    }
    /// Convolution on `geo` with quantized filters (one row of `weights` per output channel):
    /// [N, O, OH, OW]; with `int8_activations` each input image is quantized to int8 too.
    fn quantized_conv2d(&self, geo: &Geometry, x: &Tensor, weights: &QuantWeights, bias: Option<&Tensor>, int8_activations: bool, op: &str) -> Result<Tensor> {
        let _ = (geo, x, weights, bias, int8_activations);
        Err(no_kernel(self.name(), op))
    }
    /// A float32 weight [O, I] quantized to `format`: (q, scales); non-finite weights are refused.
    fn quantize(&self, w: &Tensor, format: Format, op: &str) -> Result<(Tensor, Tensor)> {
        let _ = (w, format);
        Err(no_kernel(self.name(), op))
    }
    /// The float32 weight [O, in_features] quantized `weights` stand for.
    fn dequantize(&self, weights: &QuantWeights, op: &str) -> Result<Tensor> {
        let _ = weights;
        Err(no_kernel(self.name(), op))
    }

    // Indexing, creation, losses and graph ops. Indices are checked by the
    // device without a readback: a bad one is reported by the next download or synchronize.
    /// A tensor of `shape` filled with `value` (creation, and zeros inside backward closures).
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let _ = (shape, value, dtype);
        Err(no_kernel(self.name(), "full"))
    }
    /// gather along a normalized axis; indices int32.
    fn gather(&self, x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor> {
        let _ = (x, indices, axis);
        Err(no_kernel(self.name(), "gather"))
    }
    /// base + updates added at indices along a normalized axis (a new tensor).
    fn scatter_add(&self, base: &Tensor, indices: &Tensor, updates: &Tensor, axis: usize) -> Result<Tensor> {
        let _ = (base, indices, updates, axis);
        Err(no_kernel(self.name(), "scatterAdd"))
    }
    fn one_hot(&self, indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
        let _ = (indices, depth, on, off);
        Err(no_kernel(self.name(), "oneHot"))
    }
    /// concat along a normalized axis; shapes and dtypes checked by the op.
    fn concat(&self, tensors: &[Tensor], axis: usize) -> Result<Tensor> {
        let _ = (tensors, axis);
        Err(no_kernel(self.name(), "concat"))
    }
    fn pad(&self, x: &Tensor, paddings: &[(usize, usize)], value: f64) -> Result<Tensor> {
        let _ = (x, paddings, value);
        Err(no_kernel(self.name(), "pad"))
    }
    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction) -> Result<Tensor> {
        let _ = (logits, targets, weights, smoothing, reduction);
        Err(no_kernel(self.name(), "crossEntropy"))
    }
    /// The logits' gradient from the loss's gradient `g`.
    fn cross_entropy_backward(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, smoothing: f32, reduction: Reduction, g: &Tensor) -> Result<Tensor> {
        let _ = (logits, targets, weights, smoothing, reduction, g);
        Err(no_kernel(self.name(), "crossEntropy"))
    }
    /// out[dst[e]] += weight[e] x[src[e]] -> [num_out, ...].
    fn spmm(&self, x: &Tensor, src: &Tensor, dst: &Tensor, weight: Option<&Tensor>, num_out: usize) -> Result<Tensor> {
        let _ = (x, src, dst, weight, num_out);
        Err(no_kernel(self.name(), "spmm"))
    }
    /// spmm's weight gradient: dw[e] = <g[dst[e]], x[src[e]]>.
    fn spmm_weight_grad(&self, x: &Tensor, src: &Tensor, dst: &Tensor, g: &Tensor) -> Result<Tensor> {
        let _ = (x, src, dst, g);
        Err(no_kernel(self.name(), "spmm"))
    }
    /// segment_reduce, and what its backward needs (mean: rows per segment; max: winning rows).
    fn segment_reduce(&self, values: &Tensor, ids: &Tensor, num_segments: usize, op: SegmentReduce) -> Result<(Tensor, Option<Tensor>)> {
        let _ = (values, ids, num_segments);
        Err(no_kernel(self.name(), op.name()))
    }
    fn segment_reduce_backward(&self, g: &Tensor, ids: &Tensor, saved: Option<&Tensor>, op: SegmentReduce, values_shape: &[usize]) -> Result<Tensor> {
        let _ = (g, ids, saved, values_shape);
        Err(no_kernel(self.name(), op.name()))
    }
}

/// The device that runs an op on `inputs`: the one they live on, or the CPU device when they all
/// live on the CPU. This is an op's one dispatch, and the only place that asks where tensors
/// live. Mixing devices is an error naming the op, except for 1-element CPU tensors
/// (constants), which the device uploads itself.
pub fn dispatch(op: &str, inputs: &[&Tensor]) -> Result<Arc<dyn Device>> {
    let mut found: Option<Arc<dyn Device>> = None;
    for t in inputs {
        if let Some(d) = t.device() {
            match &found {
                Some(f) if !Arc::ptr_eq(f, &d) => {
                    return Err(KilnError::new(op, "inputs live on two different devices"));
                }
                _ => found = Some(d),
            }
        }
    }
    let Some(dev) = found else { return Ok(cpu::device()) };
    if let Some(t) = inputs.iter().find(|t| t.device().is_none() && t.numel() > 1) {
        let name = dev.name().to_string();
        return Err(KilnError::new(op, format!(
            "mixes a CPU tensor ({} {}) with tensors on the {name} device: move it first with .to('{name}')",
            t.dtype(), fmt_shape(t.shape())
        )));
    }
    Ok(dev)
}

/// Moves `x` to `device` (None: the CPU). Gradients flow back to where x was. A tensor already
/// there is returned as it is.
pub fn to_device(x: &Tensor, device: Option<&Arc<dyn Device>>) -> Result<Tensor> {
    let from = x.device();
    let same = match (&from, device) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    if same {
        return Ok(x.clone());
    }
    let out = match (&from, device) {
        (Some(src), None) => src.download(x)?,
        (None, Some(dst)) => dst.upload(x)?,
        (Some(src), Some(dst)) => dst.upload(&src.download(x)?)?,
        (None, None) => unreachable!("handled above"),
    };
    Ok(crate::autograd::record("to", &[x], &[], out, move |g, _, _| Ok(vec![Some(to_device(g, from.as_ref())?)])))
}
