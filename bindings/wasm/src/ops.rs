//! The op entry points of the contract (shape ops, math, autograd, training), mirroring
//! bindings/node/src/lib.rs and fast.rs name for name.

use crate::{dims, dtype, int, ints, whole, js_error, register, registry, resolve_all, with_tensors, Handle, Result};
use kiln_core::ops::{self, BinaryOp, ReduceOp, Sections, UnaryOp};
use kiln_core::{autograd, optim, KilnError};
use wasm_bindgen::prelude::*;

fn table_op<T: Copy>(family: &str, all: &[T], code: u32) -> kiln_core::Result<T> {
    all.get(code as usize).copied().ok_or_else(|| KilnError::new(family, format!("unknown op code {code}")))
}

// ---- math ----------------------------------------------------------------------------------

#[wasm_bindgen]
pub fn unary(op: f64, x: Handle, alpha: f64) -> Result<Handle> {
    with_tensors([x], |[t]| ops::unary(table_op("unary", UnaryOp::ALL, whole("unary", "op", op)?)?, t, alpha as f32))
}

#[wasm_bindgen]
pub fn binary(op: f64, a: Handle, b: Handle) -> Result<Handle> {
    with_tensors([a, b], |[x, y]| ops::binary(table_op("binary", BinaryOp::ALL, whole("binary", "op", op)?)?, x, y))
}

#[wasm_bindgen(js_name = "where")]
pub fn where_(cond: Handle, a: Handle, b: Handle) -> Result<Handle> {
    with_tensors([cond, a, b], |[c, x, y]| ops::where_(c, x, y))
}

#[wasm_bindgen]
pub fn reduce(op: f64, x: Handle, reduce_axes: Vec<f64>, keep_dims: bool, correction: f64) -> Result<Handle> {
    with_tensors([x], |[t]| {
        let op = table_op("reduce", ReduceOp::ALL, whole("reduce", "op", op)?)?;
        let correction = whole(op.name(), "correction", correction)?;
        ops::reduce(op, t, &ints(op.name(), &reduce_axes)?, keep_dims, correction as usize)
    })
}

#[wasm_bindgen]
pub fn softmax(x: Handle, axis: f64, log: bool) -> Result<Handle> {
    with_tensors([x], |[t]| ops::softmax(t, int("softmax", axis)?, log))
}

#[wasm_bindgen]
pub fn matmul(a: Handle, b: Handle, transpose_a: bool, transpose_b: bool) -> Result<Handle> {
    with_tensors([a, b], |[x, y]| ops::matmul(x, y, transpose_a, transpose_b))
}

// ---- views and shape ops -------------------------------------------------------------------

#[wasm_bindgen]
pub fn reshape(x: Handle, new_shape: Vec<f64>) -> Result<Handle> {
    with_tensors([x], |[t]| t.reshape(&ints("reshape", &new_shape)?))
}

#[wasm_bindgen]
pub fn permute(x: Handle, perm: Vec<f64>) -> Result<Handle> {
    with_tensors([x], |[t]| t.permute(&ints("permute", &perm)?))
}

#[wasm_bindgen]
pub fn slice(x: Handle, begin: Vec<f64>, size: Vec<f64>) -> Result<Handle> {
    with_tensors([x], |[t]| t.slice(&ints("slice", &begin)?, &ints("slice", &size)?))
}

#[wasm_bindgen]
pub fn expand(x: Handle, new_shape: Vec<f64>) -> Result<Handle> {
    with_tensors([x], |[t]| t.expand(&dims("expand", &new_shape)?))
}

#[wasm_bindgen]
pub fn contiguous(x: Handle) -> Result<Handle> {
    with_tensors([x], |[t]| t.contiguous())
}

#[wasm_bindgen(js_name = "isContiguous")]
pub fn is_contiguous(x: Handle) -> Result<bool> {
    registry::with(|r| Ok(r.get(x)?.is_contiguous())).map_err(js_error)
}

#[wasm_bindgen]
pub fn squeeze(x: Handle, squeeze_axes: Vec<f64>) -> Result<Handle> {
    with_tensors([x], |[t]| t.squeeze(&ints("squeeze", &squeeze_axes)?))
}

#[wasm_bindgen]
pub fn unsqueeze(x: Handle, axis: f64) -> Result<Handle> {
    with_tensors([x], |[t]| t.unsqueeze(int("unsqueeze", axis)?))
}

#[wasm_bindgen]
pub fn cast(x: Handle, to: String) -> Result<Handle> {
    with_tensors([x], |[t]| ops::cast(t, dtype("cast", &to)?))
}

#[wasm_bindgen]
pub fn concat(tensors: Vec<Handle>, axis: f64) -> Result<Handle> {
    let out = (|| ops::concat(&resolve_all(&tensors)?, int("concat", axis)?))().map_err(js_error)?;
    Ok(register(out))
}

#[wasm_bindgen]
pub fn stack(tensors: Vec<Handle>, axis: f64) -> Result<Handle> {
    let out = (|| ops::stack(&resolve_all(&tensors)?, int("stack", axis)?))().map_err(js_error)?;
    Ok(register(out))
}

/// Splits into `count` equal parts when `sizes` is empty, else into parts of `sizes`.
#[wasm_bindgen]
pub fn split(x: Handle, sizes: Vec<f64>, count: f64, axis: f64) -> Result<js_sys::Array> {
    let parts = (|| {
        let sections = if sizes.is_empty() { Sections::Count(whole("split", "count", count)? as usize) } else { Sections::Sizes(dims("split", &sizes)?) };
        registry::with(|r| ops::split(r.get(x)?, sections, int("split", axis)?))
    })()
    .map_err(js_error)?;
    Ok(parts.into_iter().map(|t| JsValue::from_f64(register(t) as f64)).collect())
}

#[wasm_bindgen]
pub fn gather(x: Handle, indices: Handle, axis: f64) -> Result<Handle> {
    with_tensors([x, indices], |[t, i]| ops::gather(t, i, int("gather", axis)?))
}

#[wasm_bindgen(js_name = "scatterAdd")]
pub fn scatter_add(base: Handle, indices: Handle, updates: Handle, axis: f64) -> Result<Handle> {
    with_tensors([base, indices, updates], |[b, i, u]| ops::scatter_add(b, i, u, int("scatterAdd", axis)?))
}

#[wasm_bindgen(js_name = "oneHot")]
pub fn one_hot(indices: Handle, depth: f64, on: f64, off: f64) -> Result<Handle> {
    with_tensors([indices], |[i]| ops::one_hot(i, whole("oneHot", "depth", depth)? as usize, on as f32, off as f32))
}

/// `paddings` is flat: [before0, after0, before1, after1, ...].
#[wasm_bindgen]
pub fn pad(x: Handle, paddings: Vec<f64>, value: f64) -> Result<Handle> {
    with_tensors([x], |[t]| {
        let flat = dims("pad", &paddings)?;
        if flat.len() % 2 != 0 {
            return Err(KilnError::new("pad", format!("paddings must come in (before, after) pairs, got {paddings:?}")));
        }
        let pairs: Vec<(usize, usize)> = flat.chunks(2).map(|p| (p[0], p[1])).collect();
        ops::pad(t, &pairs, value)
    })
}

// ---- creation ------------------------------------------------------------------------------

#[wasm_bindgen]
pub fn full(new_shape: Vec<f64>, value: f64, dtype_name: String, op_name: Option<String>) -> Result<Handle> {
    let op = op_name.unwrap_or_else(|| "full".to_string());
    let t = (|| ops::creation::full_named(&op, &dims(&op, &new_shape)?, value, dtype(&op, &dtype_name)?))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen]
pub fn arange(start: f64, stop: f64, step: f64, dtype_name: String) -> Result<Handle> {
    let t = (|| ops::arange(start, stop, step, dtype("arange", &dtype_name)?))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen]
pub fn eye(rows: f64, cols: f64) -> Result<Handle> {
    let t = (|| ops::eye(whole("eye", "rows", rows)? as usize, whole("eye", "cols", cols)? as usize))().map_err(js_error)?;
    Ok(register(t))
}

fn seed_of(seed: Option<f64>) -> Option<u64> {
    seed.map(|s| s as u64)
}

#[wasm_bindgen]
pub fn randn(new_shape: Vec<f64>, mean: f64, std: f64, seed: Option<f64>) -> Result<Handle> {
    let t = (|| ops::randn(&dims("randn", &new_shape)?, mean as f32, std as f32, seed_of(seed)))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen]
pub fn randu(new_shape: Vec<f64>, low: f64, high: f64, seed: Option<f64>) -> Result<Handle> {
    let t = (|| ops::randu(&dims("randu", &new_shape)?, low as f32, high as f32, seed_of(seed)))().map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen(js_name = "setSeed")]
pub fn set_seed(seed: f64) {
    kiln_core::random::set_seed(seed as u64);
}

// ---- in place, autograd --------------------------------------------------------------------

/// Overwrites target's values with source's in place.
#[wasm_bindgen]
pub fn assign(target: Handle, source: Handle) -> Result<bool> {
    let src = registry::with(|r| r.get(source).cloned()).map_err(js_error)?;
    registry::with_mut(|r| {
        let mut t = r.take(target)?;
        let result = t.assign(&src);
        r.put_back(target, t);
        result.map(|_| true)
    })
    .map_err(js_error)
}

#[wasm_bindgen(js_name = "setRequiresGrad")]
pub fn set_requires_grad(x: Handle, requires: bool) -> Result<bool> {
    let t = registry::with(|r| r.get(x)?.set_requires_grad(requires)).map_err(js_error)?;
    registry::with_mut(|r| r.replace(x, t)).map_err(js_error)?;
    Ok(requires)
}

#[wasm_bindgen(js_name = "requiresGrad")]
pub fn requires_grad(x: Handle) -> Result<bool> {
    registry::with(|r| Ok(r.get(x)?.requires_grad())).map_err(js_error)
}

/// `seed` is a handle, or -1 for the implicit 1 of a one-element tensor.
#[wasm_bindgen]
pub fn backward(x: Handle, seed: f64) -> Result<bool> {
    registry::with(|r| {
        let seed = if seed < 0.0 { None } else { Some(r.get(seed as u32)?.clone()) };
        autograd::backward(r.get(x)?, seed.as_ref())
    })
    .map_err(js_error)?;
    Ok(true)
}

/// A new handle to the accumulated gradient, or -1 if there is none.
#[wasm_bindgen]
pub fn grad(x: Handle) -> Result<f64> {
    let g = registry::with(|r| Ok::<_, KilnError>(r.get(x)?.grad())).map_err(js_error)?;
    Ok(g.map_or(-1.0, |g| register(g) as f64))
}

#[wasm_bindgen(js_name = "zeroGrad")]
pub fn zero_grad(x: Handle) -> Result<bool> {
    registry::with(|r| r.get(x).map(|t| t.zero_grad())).map_err(js_error)?;
    Ok(true)
}

#[wasm_bindgen]
pub fn detach(x: Handle) -> Result<Handle> {
    with_tensors([x], |[t]| Ok(t.detach()))
}

/// Turns gradient recording on or off; returns the previous setting.
#[wasm_bindgen(js_name = "setGradEnabled")]
pub fn set_grad_enabled(enabled: bool) -> bool {
    autograd::set_enabled(enabled)
}

// ---- training ------------------------------------------------------------------------------

/// reduction: 0 none, 1 mean, 2 sum; weights: a handle or -1.
#[wasm_bindgen(js_name = "crossEntropy")]
pub fn cross_entropy(logits: Handle, targets: Handle, weights: f64, smoothing: f64, reduction: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let reduction = ops::Reduction::from_code(whole("crossEntropy", "reduction", reduction)?)?;
        let w = if weights < 0.0 { None } else { Some(r.get(weights as u32)?) };
        ops::cross_entropy(r.get(logits)?, r.get(targets)?, w, smoothing as f32, reduction)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

/// The shared in-place optimizer step (registry.rs), with errors as JS errors.
fn optimizer_step(rule: optim::Rule, transform: optim::GradTransform, param: Handle, grad: Handle, state: &[f64]) -> Result<bool> {
    registry::optimizer_step(rule, transform, param, grad, state).map_err(js_error)
}

fn transform(scale: f64, clip_value: f64, weight_decay: f64) -> optim::GradTransform {
    optim::GradTransform { scale: scale as f32, clip_value: clip_value as f32, weight_decay: weight_decay as f32 }
}

/// `buffer` is the momentum buffer handle, or -1 without momentum.
#[wasm_bindgen(js_name = "sgdStep")]
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(param: Handle, grad: Handle, buffer: f64, lr: f64, momentum: f64, dampening: f64, nesterov: bool, first_step: bool, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::Sgd { lr: lr as f32, momentum: momentum as f32, dampening: dampening as f32, nesterov, first_step };
    optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[buffer])
}

#[wasm_bindgen(js_name = "adamStep")]
#[allow(clippy::too_many_arguments)]
pub fn adam_step(param: Handle, grad: Handle, m: Handle, v: Handle, lr: f64, beta1: f64, beta2: f64, eps: f64, decoupled_decay: f64, step: f64, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let step = whole("adamStep", "step", step).map_err(js_error)?;
    let rule = optim::Rule::Adam { lr: lr as f32, beta1: beta1 as f32, beta2: beta2 as f32, eps: eps as f32, decoupled_decay: decoupled_decay as f32, step };
    optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[m as f64, v as f64])
}

#[wasm_bindgen(js_name = "rmspropStep")]
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step(param: Handle, grad: Handle, square_avg: Handle, lr: f64, alpha: f64, eps: f64, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::RmsProp { lr: lr as f32, alpha: alpha as f32, eps: eps as f32 };
    optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[square_avg as f64])
}

#[wasm_bindgen(js_name = "adagradStep")]
#[allow(clippy::too_many_arguments)]
pub fn adagrad_step(param: Handle, grad: Handle, sum: Handle, lr: f64, eps: f64, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::AdaGrad { lr: lr as f32, eps: eps as f32 };
    optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[sum as f64])
}

// ---- graph neural networks: message passing over an edge list ----

/// `weight` is a handle, or -1 for weight 1 on every edge.
#[wasm_bindgen]
pub fn spmm(x: Handle, src: Handle, dst: Handle, weight: f64, num_out: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let w = if weight < 0.0 { None } else { Some(r.get(whole("spmm", "weight", weight)?)?) };
        ops::spmm(r.get(x)?, r.get(src)?, r.get(dst)?, w, whole("spmm", "numOut", num_out)? as usize)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

#[wasm_bindgen(js_name = "segmentReduce")]
pub fn segment_reduce(op: f64, values: Handle, ids: Handle, num_segments: f64) -> Result<Handle> {
    with_tensors([values, ids], |[v, i]| {
        let op = table_op("segmentReduce", ops::SegmentReduce::ALL, whole("segmentReduce", "op", op)?)?;
        ops::segment_reduce(v, i, whole("segmentReduce", "numSegments", num_segments)? as usize, op)
    })
}

/// d(root)/d(input) per input as new handles (-1 where root does not depend on the input);
/// `seed` is a handle, or -1 for the implicit 1 of a one-element root. No leaf's grad changes.
#[wasm_bindgen]
pub fn gradients(root: Handle, seed: f64, inputs: Vec<Handle>) -> Result<Vec<f64>> {
    let grads = registry::with(|r| {
        let seed = if seed < 0.0 { None } else { Some(r.get(seed as u32)?.clone()) };
        let inputs = resolve_all(&inputs)?;
        autograd::gradients(r.get(root)?, seed.as_ref(), &inputs.iter().collect::<Vec<_>>())
    })
    .map_err(js_error)?;
    Ok(grads.into_iter().map(|g| g.map_or(-1.0, |g| register(g) as f64)).collect())
}

// ---- recurrent layers ----------------------------------------------------------------------

/// One layer and direction over a sequence (kiln-core ops/recurrent). cell: code in the op
/// table's "recurrent" family; c0, b_ih, b_hh: handles or -1 when absent.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn recurrent(cell: f64, x: Handle, h0: Handle, c0: f64, w_ih: Handle, w_hh: Handle, b_ih: f64, b_hh: f64, reverse: bool) -> Result<Handle> {
    let out = registry::with(|r| {
        let optional = |h: f64| if h < 0.0 { Ok(None) } else { r.get(h as u32).map(Some) };
        let w = ops::Weights { w_ih: r.get(w_ih)?, w_hh: r.get(w_hh)?, b_ih: optional(b_ih)?, b_hh: optional(b_hh)? };
        let cell = ops::Cell::from_code(whole("recurrent", "cell", cell)?)?;
        ops::recurrent(cell, r.get(x)?, r.get(h0)?, optional(c0)?, &w, reverse)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

// ---- convolution (CNN family) --------------------------------------------------------------

/// The conv arguments as whole numbers (wasm-bindgen would truncate 1.5 silently).
fn conv_params(op: &str, stride: [f64; 2], padding: [f64; 4], dilation: [f64; 2], groups: f64) -> kiln_core::Result<ops::ConvParams> {
    let n = |name: &str, v: f64| whole(op, name, v).map(|v| v as usize);
    Ok(ops::ConvParams {
        stride: [n("strideH", stride[0])?, n("strideW", stride[1])?],
        padding: [n("padTop", padding[0])?, n("padBottom", padding[1])?, n("padLeft", padding[2])?, n("padRight", padding[3])?],
        dilation: [n("dilationH", dilation[0])?, n("dilationW", dilation[1])?],
        groups: n("groups", groups)?,
    })
}

/// `bias` is a handle or -1; padding is per side (the TypeScript layer resolves 'same').
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn conv2d(x: Handle, w: Handle, bias: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, dilation_h: f64, dilation_w: f64, groups: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let p = conv_params("conv2d", [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups)?;
        let b = if bias < 0.0 { None } else { Some(r.get(bias as u32)?) };
        ops::conv2d(r.get(x)?, r.get(w)?, b, &p)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

#[wasm_bindgen(js_name = "convTranspose2d")]
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(x: Handle, w: Handle, bias: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, dilation_h: f64, dilation_w: f64, groups: f64, output_padding_h: f64, output_padding_w: f64) -> Result<Handle> {
    const OP: &str = "convTranspose2d";
    let out = registry::with(|r| {
        let p = conv_params(OP, [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups)?;
        let output_padding = [whole(OP, "outputPaddingH", output_padding_h)? as usize, whole(OP, "outputPaddingW", output_padding_w)? as usize];
        let b = if bias < 0.0 { None } else { Some(r.get(bias as u32)?) };
        ops::conv_transpose2d(r.get(x)?, r.get(w)?, b, &p, output_padding)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

// ---- CNN pooling and batch normalization (pool.rs, batch_norm.rs) ----

/// The pooling window from JS numbers; padding is (top, bottom, left, right).
fn pool2d(op: &str, sizes: [(&str, f64); 10]) -> kiln_core::Result<ops::Pool2d> {
    let mut v = [1usize; 10];
    for (slot, (name, value)) in v.iter_mut().zip(sizes) {
        *slot = whole(op, name, value)? as usize;
    }
    Ok(ops::Pool2d { kernel: [v[0], v[1]], stride: [v[2], v[3]], padding: [v[4], v[5], v[6], v[7]], dilation: [v[8], v[9]] })
}

#[wasm_bindgen(js_name = "maxPool2d")]
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d(x: Handle, kernel_h: f64, kernel_w: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, dilation_h: f64, dilation_w: f64) -> Result<Handle> {
    with_tensors([x], |[t]| {
        let pool = pool2d("maxPool2d", [
            ("kernelH", kernel_h), ("kernelW", kernel_w), ("strideH", stride_h), ("strideW", stride_w),
            ("padTop", pad_top), ("padBottom", pad_bottom), ("padLeft", pad_left), ("padRight", pad_right),
            ("dilationH", dilation_h), ("dilationW", dilation_w),
        ])?;
        ops::max_pool2d(t, pool)
    })
}

#[wasm_bindgen(js_name = "avgPool2d")]
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(x: Handle, kernel_h: f64, kernel_w: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, count_include_pad: bool) -> Result<Handle> {
    with_tensors([x], |[t]| {
        let pool = pool2d("avgPool2d", [
            ("kernelH", kernel_h), ("kernelW", kernel_w), ("strideH", stride_h), ("strideW", stride_w),
            ("padTop", pad_top), ("padBottom", pad_bottom), ("padLeft", pad_left), ("padRight", pad_right),
            ("dilationH", 1.0), ("dilationW", 1.0),
        ])?;
        ops::avg_pool2d(t, pool, count_include_pad)
    })
}

/// weight, bias, runningMean, runningVar: handles or -1; the running statistics update in place.
#[wasm_bindgen(js_name = "batchNorm")]
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(x: Handle, weight: f64, bias: f64, running_mean: f64, running_var: f64, training: bool, momentum: f64, eps: f64) -> Result<Handle> {
    let options = ops::BatchNorm { training, momentum: momentum as f32, eps: eps as f32 };
    let out = registry::batch_norm(x, weight, bias, running_mean, running_var, options).map_err(js_error)?;
    Ok(register(out))
}

// ---- weight-only quantization (kiln-core ops/quant.rs) --------------------------------------

#[wasm_bindgen(js_name = "fromI8")]
pub fn from_i8(data: Vec<i8>, shape: Vec<f64>) -> Result<Handle> {
    let t = kiln_core::Tensor::from_vec(data, &dims("tensor", &shape).map_err(js_error)?).map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen(js_name = "readI8")]
pub fn read_i8(h: Handle) -> Result<Vec<i8>> {
    let t = registry::with(|r| r.get(h).cloned()).map_err(js_error)?;
    t.expect_dtype("data", kiln_core::DType::I8).map_err(js_error)?;
    t.elements::<i8>("data").map_err(js_error)
}

/// [q, scales] for an int8 per-channel quantization of w [O, I].
#[wasm_bindgen(js_name = "quantizeInt8")]
pub fn quantize_int8(w: Handle) -> Result<Vec<Handle>> {
    let (q, s) = registry::with(|r| ops::quantize_int8(r.get(w)?)).map_err(js_error)?;
    Ok(vec![register(q), register(s)])
}

/// [packed, scales] for an int4 per-block quantization of w [O, I].
#[wasm_bindgen(js_name = "quantizeInt4")]
pub fn quantize_int4(w: Handle, block: f64) -> Result<Vec<Handle>> {
    let (q, s) = registry::with(|r| ops::quantize_int4(r.get(w)?, whole("quantizeInt4", "block", block)? as usize)).map_err(js_error)?;
    Ok(vec![register(q), register(s)])
}

#[wasm_bindgen(js_name = "dequantizeInt8")]
pub fn dequantize_int8(q: Handle, scales: Handle) -> Result<Handle> {
    with_tensors([q, scales], |[q, s]| ops::dequantize_int8(q, s))
}

#[wasm_bindgen(js_name = "dequantizeInt4")]
pub fn dequantize_int4(packed: Handle, scales: Handle, in_features: f64, block: f64) -> Result<Handle> {
    with_tensors([packed, scales], |[p, s]| {
        ops::dequantize_int4(p, s, whole("dequantizeInt4", "inFeatures", in_features)? as usize, whole("dequantizeInt4", "block", block)? as usize)
    })
}

/// `bias` is a handle, or -1 without bias.
#[wasm_bindgen(js_name = "linearQ8")]
pub fn linear_q8(x: Handle, q: Handle, scales: Handle, bias: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let b = if bias < 0.0 { None } else { Some(r.get(whole("linearQ8", "bias", bias)?)?) };
        ops::linear_q8(r.get(x)?, r.get(q)?, r.get(scales)?, b)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

/// As linearQ8, with the input quantized to int8 too (int8 x int8 -> i32).
#[wasm_bindgen(js_name = "linearW8A8")]
pub fn linear_w8a8(x: Handle, q: Handle, scales: Handle, bias: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let b = if bias < 0.0 { None } else { Some(r.get(whole("linearW8A8", "bias", bias)?)?) };
        ops::linear_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, b)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

#[wasm_bindgen(js_name = "linearQ4")]
pub fn linear_q4(x: Handle, packed: Handle, scales: Handle, bias: f64, block: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let b = if bias < 0.0 { None } else { Some(r.get(whole("linearQ4", "bias", bias)?)?) };
        ops::linear_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, b, whole("linearQ4", "block", block)? as usize)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

// ---- attention (Transformer family) --------------------------------------------------------

/// mask: a handle or -1; scale: NaN for 1/sqrt(D); seed: negative to draw from the global generator.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn attention(q: Handle, k: Handle, v: Handle, mask: f64, causal: bool, scale: f64, dropout: f64, seed: f64) -> Result<Handle> {
    let out = registry::with(|r| {
        let m = if mask < 0.0 { None } else { Some(r.get(whole("attention", "mask", mask)?)?) };
        ops::attention(r.get(q)?, r.get(k)?, r.get(v)?, m, &ops::AttentionOptions::from_flat(causal, scale, dropout, seed))
    })
    .map_err(js_error)?;
    Ok(register(out))
}

/// The most bytes live at once since the last reset (tensors and kernel scratch); `reset` starts anew.
#[wasm_bindgen(js_name = "peakBytes")]
pub fn peak_bytes(reset: bool) -> f64 {
    let peak = kiln_core::storage::peak_bytes() as f64;
    if reset {
        kiln_core::storage::reset_peak_bytes();
    }
    peak
}

// ---- quantized convolutions (kiln-core ops/quant/conv.rs) ----------------------------------

/// `bias` is a handle or -1; the kernel size [kh, kw] comes first (the rows do not record it),
/// then conv2d's stride, per-side padding, dilation and groups.
#[wasm_bindgen(js_name = "conv2dQ8")]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_q8(x: Handle, q: Handle, scales: Handle, bias: f64, kernel_h: f64, kernel_w: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, dilation_h: f64, dilation_w: f64, groups: f64) -> Result<Handle> {
    const OP: &str = "conv2dQ8";
    let out = registry::with(|r| {
        let p = conv_params(OP, [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups)?;
        let kernel = [whole(OP, "kernelH", kernel_h)? as usize, whole(OP, "kernelW", kernel_w)? as usize];
        let b = if bias < 0.0 { None } else { Some(r.get(whole(OP, "bias", bias)?)?) };
        ops::conv2d_q8(r.get(x)?, r.get(q)?, r.get(scales)?, b, kernel, &p)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

/// As conv2dQ8, with the input quantized to int8 too (int8 x int8 -> i32).
#[wasm_bindgen(js_name = "conv2dW8A8")]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_w8a8(x: Handle, q: Handle, scales: Handle, bias: f64, kernel_h: f64, kernel_w: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, dilation_h: f64, dilation_w: f64, groups: f64) -> Result<Handle> {
    const OP: &str = "conv2dW8A8";
    let out = registry::with(|r| {
        let p = conv_params(OP, [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups)?;
        let kernel = [whole(OP, "kernelH", kernel_h)? as usize, whole(OP, "kernelW", kernel_w)? as usize];
        let b = if bias < 0.0 { None } else { Some(r.get(whole(OP, "bias", bias)?)?) };
        ops::conv2d_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, b, kernel, &p)
    })
    .map_err(js_error)?;
    Ok(register(out))
}

#[wasm_bindgen(js_name = "conv2dQ4")]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_q4(x: Handle, packed: Handle, scales: Handle, bias: f64, kernel_h: f64, kernel_w: f64, stride_h: f64, stride_w: f64, pad_top: f64, pad_bottom: f64, pad_left: f64, pad_right: f64, dilation_h: f64, dilation_w: f64, groups: f64, block: f64) -> Result<Handle> {
    const OP: &str = "conv2dQ4";
    let out = registry::with(|r| {
        let p = conv_params(OP, [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups)?;
        let kernel = [whole(OP, "kernelH", kernel_h)? as usize, whole(OP, "kernelW", kernel_w)? as usize];
        let b = if bias < 0.0 { None } else { Some(r.get(whole(OP, "bias", bias)?)?) };
        ops::conv2d_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, b, kernel, &p, whole(OP, "block", block)? as usize)
    })
    .map_err(js_error)?;
    Ok(register(out))
}
