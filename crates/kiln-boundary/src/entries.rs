//! The bodies of the entries declared in the table of lib.rs, one function each, shared by the
//! N-API addon and the WASM module. Arguments arrive already checked by their kinds (kinds.rs);
//! a body resolves handles, calls kiln-core and registers what it returns.

mod creation;
mod data;
mod shape;
pub use creation::*;
pub use data::*;
pub use shape::*;

use kiln_core::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use kiln_core::{autograd, optim, KilnError, Result, Tensor};
use crate::kinds;
use kiln_registry::{self as registry, register, with_tensors};

type H = u32;

fn table_op<T: Copy>(family: &str, all: &[T], code: u32) -> Result<T> {
    all.get(code as usize).copied().ok_or_else(|| KilnError::new(family, format!("unknown op code {code}")))
}

/// Resolves an optional handle inside a registry borrow.
fn optional(r: &registry::Registry, h: Option<H>) -> Result<Option<&Tensor>> {
    h.map(|h| r.get(h)).transpose()
}

fn transform(t: kinds::GradTransform) -> optim::GradTransform {
    optim::GradTransform { scale: t.scale as f32, clip_value: t.clip_value as f32, weight_decay: t.weight_decay as f32 }
}

// ---- handles --------------------------------------------------------------------------------

pub fn dispose(h: H) -> Result<bool> {
    Ok(registry::with_mut(|r| r.remove(h)))
}

pub fn is_contiguous(x: H) -> Result<bool> {
    registry::with(|r| Ok(r.get(x)?.is_contiguous()))
}

// ---- math -----------------------------------------------------------------------------------

pub fn unary(op: u32, x: H, alpha: f64) -> Result<H> {
    with_tensors([x], |[t]| ops::unary(table_op("unary", UnaryOp::ALL, op)?, t, alpha as f32))
}

pub fn binary(op: u32, a: H, b: H) -> Result<H> {
    with_tensors([a, b], |[x, y]| ops::binary(table_op("binary", BinaryOp::ALL, op)?, x, y))
}

pub fn where_(cond: H, a: H, b: H) -> Result<H> {
    with_tensors([cond, a, b], |[c, x, y]| ops::where_(c, x, y))
}

/// Named after the reduction (sum, mean, ...), which is what the user called: the axes and the
/// correction are checked here rather than by their kinds.
pub fn reduce(op: u32, x: H, axes: Vec<f64>, keep_dims: bool, correction: f64) -> Result<H> {
    let op = table_op("reduce", ReduceOp::ALL, op)?;
    let correction = <crate::kinds::Count as crate::kinds::Scalar>::from_number(op.name(), "correction", correction)?;
    let axes = kiln_core::args::ints(op.name(), &axes)?;
    with_tensors([x], |[t]| ops::reduce(op, t, &axes, keep_dims, correction as usize))
}

pub fn softmax(x: H, axis: isize, log: bool) -> Result<H> {
    with_tensors([x], |[t]| ops::softmax(t, axis, log))
}

pub fn matmul(a: H, b: H, transpose_a: bool, transpose_b: bool) -> Result<H> {
    with_tensors([a, b], |[x, y]| ops::matmul(x, y, transpose_a, transpose_b))
}

/// `activation` (a unary op's name, 'gelu', ...; alpha: its parameter) applied to the output:
/// fused into the product under inference (ops::linear_activated).
pub fn linear(x: H, w: H, bias: Option<H>, residual: Option<H>, activation: Option<String>, alpha: f64) -> Result<H> {
    let activation = activation
        .map(|name| {
            let op = UnaryOp::ALL.iter().copied().find(|op| op.name() == name);
            op.map(|op| ops::Activation { op, alpha: alpha as f32 }).ok_or_else(|| KilnError::new("linear", format!("unknown activation '{name}' (a unary op's name, e.g. 'gelu', 'relu')")))
        })
        .transpose()?;
    let out = registry::with(|r| ops::linear_activated(r.get(x)?, r.get(w)?, optional(r, bias)?, optional(r, residual)?, activation))?;
    Ok(register(out))
}

// ---- views and indexing ---------------------------------------------------------------------

pub fn contiguous(x: H) -> Result<H> {
    with_tensors([x], |[t]| t.contiguous())
}

pub fn unsqueeze(x: H, axis: isize) -> Result<H> {
    with_tensors([x], |[t]| t.unsqueeze(axis))
}

pub fn gather(x: H, indices: H, axis: isize) -> Result<H> {
    with_tensors([x, indices], |[t, i]| ops::gather(t, i, axis))
}

pub fn scatter_add(base: H, indices: H, updates: H, axis: isize) -> Result<H> {
    with_tensors([base, indices, updates], |[b, i, u]| ops::scatter_add(b, i, u, axis))
}

pub fn one_hot(indices: H, depth: u32, on: f64, off: f64) -> Result<H> {
    with_tensors([indices], |[i]| ops::one_hot(i, depth as usize, on as f32, off as f32))
}

pub fn eye(rows: u32, cols: u32) -> Result<H> {
    Ok(register(ops::eye(rows as usize, cols as usize)?))
}

/// Overwrites target's values with source's in place.
pub fn assign(target: H, source: H) -> Result<bool> {
    let src = registry::with(|r| r.get(source).cloned())?;
    registry::with_mut(|r| {
        let mut t = r.take(target)?;
        let result = t.assign(&src);
        r.put_back(target, t);
        result.map(|_| true)
    })
}

// ---- autograd -------------------------------------------------------------------------------

pub fn set_requires_grad(x: H, requires: bool) -> Result<bool> {
    let t = registry::with(|r| r.get(x)?.set_requires_grad(requires))?;
    registry::with_mut(|r| r.replace(x, t))?;
    Ok(requires)
}

pub fn requires_grad(x: H) -> Result<bool> {
    registry::with(|r| Ok(r.get(x)?.requires_grad()))
}

/// `seed` None: the implicit 1 of a one-element tensor.
pub fn backward(x: H, seed: Option<H>) -> Result<bool> {
    registry::with(|r| autograd::backward(r.get(x)?, optional(r, seed)?))?;
    Ok(true)
}

/// A new handle to the accumulated gradient, or -1 if there is none.
pub fn grad(x: H) -> Result<f64> {
    let g = registry::with(|r| Ok::<_, KilnError>(r.get(x)?.grad()))?;
    Ok(g.map_or(-1.0, |g| register(g) as f64))
}

pub fn zero_grad(x: H) -> Result<bool> {
    registry::with(|r| r.get(x).map(|t| t.zero_grad()))?;
    Ok(true)
}

pub fn detach(x: H) -> Result<H> {
    with_tensors([x], |[t]| Ok(t.detach()))
}

/// d(root)/d(input) per input as new handles (-1 where root does not depend on the input); `seed`
/// None: the implicit 1 of a one-element root. Returned, not accumulated: no leaf's grad changes.
pub fn gradients(root: H, seed: Option<H>, inputs: Vec<H>) -> Result<Vec<f64>> {
    let inputs = registry::resolve_all(&inputs)?;
    let grads = registry::with(|r| autograd::gradients(r.get(root)?, optional(r, seed)?, &inputs.iter().collect::<Vec<_>>()))?;
    Ok(grads.into_iter().map(|g| g.map_or(-1.0, |g| register(g) as f64)).collect())
}

/// Turns gradient recording on or off; returns the previous setting.
pub fn set_grad_enabled(enabled: bool) -> Result<bool> {
    Ok(autograd::set_enabled(enabled))
}

// ---- training -------------------------------------------------------------------------------

/// reduction: 0 none, 1 mean, 2 sum.
pub fn cross_entropy(logits: H, targets: H, weights: Option<H>, smoothing: f64, reduction: u32) -> Result<H> {
    let reduction = ops::Reduction::from_code(reduction)?;
    let out = registry::with(|r| ops::cross_entropy(r.get(logits)?, r.get(targets)?, optional(r, weights)?, smoothing as f32, reduction))?;
    Ok(register(out))
}

pub fn sgd_step(param: H, grad: H, buffer: Option<H>, o: kinds::SgdStepOptions, t: kinds::GradTransform) -> Result<bool> {
    let rule = optim::Rule::Sgd { lr: o.lr as f32, momentum: o.momentum as f32, dampening: o.dampening as f32, nesterov: o.nesterov, first_step: o.first_step };
    let state: Vec<H> = buffer.into_iter().collect();
    registry::optimizer_step(rule, transform(t), param, grad, &state)
}

pub fn adam_step(param: H, grad: H, m: H, v: H, o: kinds::AdamStepOptions, t: kinds::GradTransform) -> Result<bool> {
    let rule = optim::Rule::Adam { lr: o.lr as f32, beta1: o.beta1 as f32, beta2: o.beta2 as f32, eps: o.eps as f32, decoupled_decay: o.decoupled_decay as f32, step: o.step };
    registry::optimizer_step(rule, transform(t), param, grad, &[m, v])
}

pub fn rmsprop_step(param: H, grad: H, square_avg: H, o: kinds::RmspropStepOptions, t: kinds::GradTransform) -> Result<bool> {
    let rule = optim::Rule::RmsProp { lr: o.lr as f32, alpha: o.alpha as f32, eps: o.eps as f32 };
    registry::optimizer_step(rule, transform(t), param, grad, &[square_avg])
}

pub fn adagrad_step(param: H, grad: H, sum: H, o: kinds::AdagradStepOptions, t: kinds::GradTransform) -> Result<bool> {
    let rule = optim::Rule::AdaGrad { lr: o.lr as f32, eps: o.eps as f32 };
    registry::optimizer_step(rule, transform(t), param, grad, &[sum])
}

/// The most bytes live at once since the last reset (tensors and kernel scratch); `reset` starts anew.
pub fn peak_bytes(reset: bool) -> Result<f64> {
    let peak = kiln_core::storage::peak_bytes() as f64;
    if reset {
        kiln_core::storage::reset_peak_bytes();
    }
    Ok(peak)
}

/// Counts the in-place writes of `xs` from now on (Tensor::watch_writes) and returns the count of
/// writes to every watched tensor so far: the ONNX importer calls it once per run to learn
/// whether a weight it folded or packed was written since.
pub fn watch_writes(xs: Vec<H>) -> Result<f64> {
    for t in registry::resolve_all(&xs)? {
        t.watch_writes();
    }
    Ok(kiln_core::storage::watched_writes() as f64)
}

// ---- graph neural networks: message passing over an edge list ------------------------------

/// `weight` None: weight 1 on every edge.
pub fn spmm(x: H, src: H, dst: H, weight: Option<H>, num_out: u32) -> Result<H> {
    let out = registry::with(|r| ops::spmm(r.get(x)?, r.get(src)?, r.get(dst)?, optional(r, weight)?, num_out as usize))?;
    Ok(register(out))
}

pub fn segment_reduce(op: u32, values: H, ids: H, num_segments: u32) -> Result<H> {
    let op = table_op("segmentReduce", ops::SegmentReduce::ALL, op)?;
    with_tensors([values, ids], |[v, i]| ops::segment_reduce(v, i, num_segments as usize, op))
}

// ---- recurrent layers -----------------------------------------------------------------------

/// One layer and direction over a sequence (kiln-core ops/recurrent); cell: a code of the op
/// table's "recurrent" family.
#[allow(clippy::too_many_arguments)]
pub fn recurrent(cell: u32, x: H, h0: H, c0: Option<H>, w_ih: H, w_hh: H, b_ih: Option<H>, b_hh: Option<H>, reverse: bool) -> Result<H> {
    let out = registry::with(|r| {
        let w = ops::Weights { w_ih: r.get(w_ih)?, w_hh: r.get(w_hh)?, b_ih: optional(r, b_ih)?, b_hh: optional(r, b_hh)? };
        ops::recurrent(ops::Cell::from_code(cell)?, r.get(x)?, r.get(h0)?, optional(r, c0)?, &w, reverse)
    })?;
    Ok(register(out))
}

// ---- weight-only quantization (kiln-core ops/quant) -----------------------------------------

/// [q, scales] for an int8 per-channel quantization of w [O, I].
pub fn quantize_int8(w: H) -> Result<Vec<H>> {
    let (q, s) = registry::with(|r| ops::quantize_int8(r.get(w)?))?;
    Ok(vec![register(q), register(s)])
}

/// [packed, scales] for an int4 per-block quantization of w [O, I].
pub fn quantize_int4(w: H, block: u32) -> Result<Vec<H>> {
    let (q, s) = registry::with(|r| ops::quantize_int4(r.get(w)?, block as usize))?;
    Ok(vec![register(q), register(s)])
}

pub fn dequantize_int8(q: H, scales: H) -> Result<H> {
    with_tensors([q, scales], |[q, s]| ops::dequantize_int8(q, s))
}

pub fn dequantize_int4(packed: H, scales: H, in_features: u32, block: u32) -> Result<H> {
    with_tensors([packed, scales], |[p, s]| ops::dequantize_int4(p, s, in_features as usize, block as usize))
}

pub fn linear_q8(x: H, q: H, scales: H, bias: Option<H>) -> Result<H> {
    let out = registry::with(|r| ops::linear_q8(r.get(x)?, r.get(q)?, r.get(scales)?, optional(r, bias)?))?;
    Ok(register(out))
}

/// As linear_q8, with the input quantized to int8 too (int8 x int8 -> i32; ops/quant/w8a8.rs).
pub fn linear_w8a8(x: H, q: H, scales: H, bias: Option<H>) -> Result<H> {
    let out = registry::with(|r| ops::linear_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, optional(r, bias)?))?;
    Ok(register(out))
}

pub fn linear_q4(x: H, packed: H, scales: H, bias: Option<H>, block: u32) -> Result<H> {
    let out = registry::with(|r| ops::linear_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, optional(r, bias)?, block as usize))?;
    Ok(register(out))
}

// ---- convolution and pooling (CNN family); padding is per side (top, bottom, left, right) ----

fn conv_params(g: kinds::ConvGeometry) -> ops::ConvParams {
    ops::ConvParams { stride: g.stride, padding: g.padding, dilation: g.dilation, groups: g.groups as usize }
}

/// `activation` ('relu', ...; alpha: leakyRelu's slope, elu's scale) is applied as the
/// convolution writes its output (kiln-core params::conv::Activation).
/// conv2d with its fused epilogue: `residual` (a handle or none) added, then `activation`.
pub fn conv2d(x: H, w: H, bias: Option<H>, residual: Option<H>, geometry: kinds::ConvGeometry, alpha: f64, activation: Option<String>) -> Result<H> {
    let activation = activation.map(|name| ops::Activation::new("conv2d", &name, alpha as f32)).transpose()?;
    let out = registry::with(|r| {
        let epilogue = ops::Epilogue { residual: optional(r, residual)?, activation };
        ops::conv2d_fused(r.get(x)?, r.get(w)?, optional(r, bias)?, &conv_params(geometry), epilogue)
    })?;
    Ok(register(out))
}

/// Several convolutions of `x`, concatenated on channels (filter_sets gives the sets).
pub fn conv2d_concat(x: H, weights: Vec<H>, biases: Vec<H>, geometries: Vec<kinds::ConvGeometry>, activations: Vec<String>, alphas: Vec<f64>) -> Result<H> {
    const OP: &str = "conv2dConcat";
    let out = registry::with(|r| ops::conv2d_concat(r.get(x)?, &filter_sets(OP, r, &weights, &biases, &geometries, &activations, &alphas)?))?;
    Ok(register(out))
}

/// conv2dConcat in NCHWc: `weights` are packed filters (packNchwcFilters), outputs side by side
/// on the block axis; inference only.
pub fn conv2d_nchwc_concat(x: H, weights: Vec<H>, biases: Vec<H>, geometries: Vec<kinds::ConvGeometry>, activations: Vec<String>, alphas: Vec<f64>) -> Result<H> {
    const OP: &str = "conv2dNchwcConcat";
    let out = registry::with(|r| ops::conv2d_nchwc_concat(r.get(x)?, &filter_sets(OP, r, &weights, &biases, &geometries, &activations, &alphas)?))?;
    Ok(register(out))
}

/// The filter sets of the concatenating convolutions from parallel lists: set i is
/// `weights[i]`, `biases[i]` (biases: empty for none, else one per set), `geometries[i]`, and
/// `activations[i]` ('' for none) with `alphas[i]`.
fn filter_sets<'r>(op: &str, r: &'r registry::Registry, weights: &[H], biases: &[H], geometries: &[kinds::ConvGeometry], activations: &[String], alphas: &[f64]) -> Result<Vec<ops::ConvBranch<'r>>> {
    let sets = weights.len();
    if geometries.len() != sets || activations.len() != sets || alphas.len() != sets || !(biases.is_empty() || biases.len() == sets) {
        return Err(KilnError::new(op, format!(
            "needs one geometry, activation and alpha per filter set and no biases or one per set: {sets} weights, {} biases, {} geometries, {} activations, {} alphas",
            biases.len(), geometries.len(), activations.len(), alphas.len()
        )));
    }
    (0..sets)
        .map(|i| {
            let activation = (!activations[i].is_empty()).then(|| ops::Activation::new(op, &activations[i], alphas[i] as f32)).transpose()?;
            Ok(ops::ConvBranch { weight: r.get(weights[i])?, bias: biases.get(i).map(|&b| r.get(b)).transpose()?, params: conv_params(geometries[i]), activation })
        })
        .collect()
}

/// conv2d in the channel-blocked layout NCHWc (kiln-core ops/conv_nchwc.rs): x [N, Cb, H, W, 16],
/// `packed` from packNchwcFilters, `residual` in the output's layout; inference only.
pub fn conv2d_nchwc(x: H, packed: H, bias: Option<H>, residual: Option<H>, geometry: kinds::ConvGeometry, alpha: f64, activation: Option<String>) -> Result<H> {
    let activation = activation.map(|name| ops::Activation::new("conv2dNchwc", &name, alpha as f32)).transpose()?;
    let out = registry::with(|r| {
        let epilogue = ops::Epilogue { residual: optional(r, residual)?, activation };
        ops::conv2d_nchwc(r.get(x)?, r.get(packed)?, optional(r, bias)?, &conv_params(geometry), epilogue)
    })?;
    Ok(register(out))
}

pub fn to_nchwc(x: H) -> Result<H> {
    with_tensors([x], |[t]| ops::to_nchwc(t))
}

/// NCHWc -> NCHW with `channels` channels (the last block's padding dropped).
pub fn from_nchwc(x: H, channels: u32) -> Result<H> {
    with_tensors([x], |[t]| ops::from_nchwc(t, channels as usize))
}

pub fn pack_nchwc_filters(w: H) -> Result<H> {
    with_tensors([w], |[t]| ops::pack_nchwc_filters(t))
}

pub fn conv_transpose2d(x: H, w: H, bias: Option<H>, geometry: kinds::ConvGeometry, output_padding: [usize; 2]) -> Result<H> {
    let out = registry::with(|r| ops::conv_transpose2d(r.get(x)?, r.get(w)?, optional(r, bias)?, &conv_params(geometry), output_padding))?;
    Ok(register(out))
}

pub fn max_pool2d(x: H, w: kinds::MaxPoolWindow) -> Result<H> {
    with_tensors([x], |[t]| ops::max_pool2d(t, max_pool_window(w)))
}

/// max_pool2d of a blocked (NCHWc) x; inference only.
pub fn max_pool2d_nchwc(x: H, w: kinds::MaxPoolWindow) -> Result<H> {
    with_tensors([x], |[t]| ops::max_pool2d_nchwc(t, max_pool_window(w)))
}

/// avg_pool2d of a blocked (NCHWc) x; inference only.
pub fn avg_pool2d_nchwc(x: H, w: kinds::AvgPoolWindow) -> Result<H> {
    with_tensors([x], |[t]| ops::avg_pool2d_nchwc(t, avg_pool_window(w), w.count_include_pad))
}

fn max_pool_window(w: kinds::MaxPoolWindow) -> ops::Pool2d {
    ops::Pool2d { kernel: w.kernel, stride: w.stride, padding: w.padding, dilation: w.dilation }
}

pub fn avg_pool2d(x: H, w: kinds::AvgPoolWindow) -> Result<H> {
    with_tensors([x], |[t]| ops::avg_pool2d(t, avg_pool_window(w), w.count_include_pad))
}

fn avg_pool_window(w: kinds::AvgPoolWindow) -> ops::Pool2d {
    ops::Pool2d { kernel: w.kernel, stride: w.stride, padding: w.padding, dilation: [1, 1] }
}

/// The running statistics update in place when training (kiln-registry's in_place.rs).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(x: H, weight: Option<H>, bias: Option<H>, running_mean: Option<H>, running_var: Option<H>, training: bool, momentum: f64, eps: f64) -> Result<H> {
    let options = ops::BatchNorm { training, momentum: momentum as f32, eps: eps as f32 };
    Ok(register(registry::batch_norm(x, weight, bias, running_mean, running_var, options)?))
}

// ---- attention (Transformer family) ---------------------------------------------------------

pub fn attention(q: H, k: H, v: H, mask: Option<H>, o: kinds::FusedAttentionOptions) -> Result<H> {
    let options = ops::AttentionOptions::from_flat(o.causal, o.scale, o.dropout, o.seed);
    let out = registry::with(|r| ops::attention(r.get(q)?, r.get(k)?, r.get(v)?, optional(r, mask)?, &options))?;
    Ok(register(out))
}

pub fn layer_norm(x: H, weight: Option<H>, bias: Option<H>, axis: isize, eps: f64) -> Result<H> {
    let out = registry::with(|r| ops::layer_norm(r.get(x)?, optional(r, weight)?, optional(r, bias)?, axis, eps as f32))?;
    Ok(register(out))
}

// ---- quantized convolutions (kiln-core ops/quant/conv.rs) -----------------------------------
// The kernel size [kh, kw] comes apart from the geometry: the filter rows do not record it.

pub fn conv2d_q8(x: H, q: H, scales: H, bias: Option<H>, kernel: [usize; 2], geometry: kinds::ConvGeometry) -> Result<H> {
    let out = registry::with(|r| ops::conv2d_q8(r.get(x)?, r.get(q)?, r.get(scales)?, optional(r, bias)?, kernel, &conv_params(geometry)))?;
    Ok(register(out))
}

/// As conv2d_q8, with the input quantized to int8 too (int8 x int8 -> i32; ops/quant/w8a8.rs).
pub fn conv2d_w8a8(x: H, q: H, scales: H, bias: Option<H>, kernel: [usize; 2], geometry: kinds::ConvGeometry) -> Result<H> {
    let out = registry::with(|r| ops::conv2d_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, optional(r, bias)?, kernel, &conv_params(geometry)))?;
    Ok(register(out))
}

pub fn conv2d_q4(x: H, packed: H, scales: H, bias: Option<H>, kernel: [usize; 2], geometry: kinds::ConvGeometry, block: u32) -> Result<H> {
    let out = registry::with(|r| ops::conv2d_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, optional(r, bias)?, kernel, &conv_params(geometry), block as usize))?;
    Ok(register(out))
}
