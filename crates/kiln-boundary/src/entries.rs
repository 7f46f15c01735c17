//! The bodies of the entries declared in the table of lib.rs, one function each, shared by the
//! N-API addon and the WASM module. Arguments arrive already checked by their kinds (kinds.rs);
//! a body resolves handles, calls kiln-core and registers what it returns.

use kiln_core::ops::{self, BinaryOp, UnaryOp};
use kiln_core::{autograd, optim, KilnError, Result, Tensor};
use kiln_registry::{self as registry, register, with_tensors};

type H = u32;

fn table_op<T: Copy>(family: &str, all: &[T], code: u32) -> Result<T> {
    all.get(code as usize).copied().ok_or_else(|| KilnError::new(family, format!("unknown op code {code}")))
}

/// Resolves an optional handle inside a registry borrow.
fn optional(r: &registry::Registry, h: Option<H>) -> Result<Option<&Tensor>> {
    h.map(|h| r.get(h)).transpose()
}

fn transform(scale: f64, clip_value: f64, weight_decay: f64) -> optim::GradTransform {
    optim::GradTransform { scale: scale as f32, clip_value: clip_value as f32, weight_decay: weight_decay as f32 }
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

pub fn softmax(x: H, axis: isize, log: bool) -> Result<H> {
    with_tensors([x], |[t]| ops::softmax(t, axis, log))
}

pub fn matmul(a: H, b: H, transpose_a: bool, transpose_b: bool) -> Result<H> {
    with_tensors([a, b], |[x, y]| ops::matmul(x, y, transpose_a, transpose_b))
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

#[allow(clippy::too_many_arguments)]
pub fn sgd_step(param: H, grad: H, buffer: Option<H>, lr: f64, momentum: f64, dampening: f64, nesterov: bool, first_step: bool, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::Sgd { lr: lr as f32, momentum: momentum as f32, dampening: dampening as f32, nesterov, first_step };
    let state: Vec<H> = buffer.into_iter().collect();
    registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &state)
}

#[allow(clippy::too_many_arguments)]
pub fn adam_step(param: H, grad: H, m: H, v: H, lr: f64, beta1: f64, beta2: f64, eps: f64, decoupled_decay: f64, step: u32, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::Adam { lr: lr as f32, beta1: beta1 as f32, beta2: beta2 as f32, eps: eps as f32, decoupled_decay: decoupled_decay as f32, step };
    registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[m, v])
}

#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step(param: H, grad: H, square_avg: H, lr: f64, alpha: f64, eps: f64, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::RmsProp { lr: lr as f32, alpha: alpha as f32, eps: eps as f32 };
    registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[square_avg])
}

#[allow(clippy::too_many_arguments)]
pub fn adagrad_step(param: H, grad: H, sum: H, lr: f64, eps: f64, scale: f64, clip_value: f64, weight_decay: f64) -> Result<bool> {
    let rule = optim::Rule::AdaGrad { lr: lr as f32, eps: eps as f32 };
    registry::optimizer_step(rule, transform(scale, clip_value, weight_decay), param, grad, &[sum])
}

/// The most bytes live at once since the last reset (tensors and kernel scratch); `reset` starts anew.
pub fn peak_bytes(reset: bool) -> Result<f64> {
    let peak = kiln_core::storage::peak_bytes() as f64;
    if reset {
        kiln_core::storage::reset_peak_bytes();
    }
    Ok(peak)
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

fn conv_params(stride: [u32; 2], padding: [u32; 4], dilation: [u32; 2], groups: u32) -> ops::ConvParams {
    ops::ConvParams { stride: stride.map(|v| v as usize), padding: padding.map(|v| v as usize), dilation: dilation.map(|v| v as usize), groups: groups as usize }
}

fn pool2d(kernel: [u32; 2], stride: [u32; 2], padding: [u32; 4], dilation: [u32; 2]) -> ops::Pool2d {
    ops::Pool2d { kernel: kernel.map(|v| v as usize), stride: stride.map(|v| v as usize), padding: padding.map(|v| v as usize), dilation: dilation.map(|v| v as usize) }
}

#[allow(clippy::too_many_arguments)]
pub fn conv2d(x: H, w: H, bias: Option<H>, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32) -> Result<H> {
    let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
    let out = registry::with(|r| ops::conv2d(r.get(x)?, r.get(w)?, optional(r, bias)?, &p))?;
    Ok(register(out))
}

#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(x: H, w: H, bias: Option<H>, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32, output_padding_h: u32, output_padding_w: u32) -> Result<H> {
    let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
    let output_padding = [output_padding_h as usize, output_padding_w as usize];
    let out = registry::with(|r| ops::conv_transpose2d(r.get(x)?, r.get(w)?, optional(r, bias)?, &p, output_padding))?;
    Ok(register(out))
}

#[allow(clippy::too_many_arguments)]
pub fn max_pool2d(x: H, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32) -> Result<H> {
    let pool = pool2d([kernel_h, kernel_w], [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w]);
    with_tensors([x], |[t]| ops::max_pool2d(t, pool))
}

#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(x: H, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, count_include_pad: bool) -> Result<H> {
    let pool = pool2d([kernel_h, kernel_w], [stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [1, 1]);
    with_tensors([x], |[t]| ops::avg_pool2d(t, pool, count_include_pad))
}

/// The running statistics update in place when training (kiln-registry's in_place.rs).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(x: H, weight: Option<H>, bias: Option<H>, running_mean: Option<H>, running_var: Option<H>, training: bool, momentum: f64, eps: f64) -> Result<H> {
    let options = ops::BatchNorm { training, momentum: momentum as f32, eps: eps as f32 };
    Ok(register(registry::batch_norm(x, weight, bias, running_mean, running_var, options)?))
}

// ---- attention (Transformer family) ---------------------------------------------------------

/// scale: NaN for 1/sqrt(D); seed: negative to draw from the global generator.
#[allow(clippy::too_many_arguments)]
pub fn attention(q: H, k: H, v: H, mask: Option<H>, causal: bool, scale: f64, dropout: f64, seed: f64) -> Result<H> {
    let options = ops::AttentionOptions::from_flat(causal, scale, dropout, seed);
    let out = registry::with(|r| ops::attention(r.get(q)?, r.get(k)?, r.get(v)?, optional(r, mask)?, &options))?;
    Ok(register(out))
}

// ---- quantized convolutions (kiln-core ops/quant/conv.rs) -----------------------------------
// The kernel size [kh, kw] comes first (the filter rows do not record it).

#[allow(clippy::too_many_arguments)]
pub fn conv2d_q8(x: H, q: H, scales: H, bias: Option<H>, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32) -> Result<H> {
    let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
    let kernel = [kernel_h as usize, kernel_w as usize];
    let out = registry::with(|r| ops::conv2d_q8(r.get(x)?, r.get(q)?, r.get(scales)?, optional(r, bias)?, kernel, &p))?;
    Ok(register(out))
}

/// As conv2d_q8, with the input quantized to int8 too (int8 x int8 -> i32; ops/quant/w8a8.rs).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_w8a8(x: H, q: H, scales: H, bias: Option<H>, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32) -> Result<H> {
    let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
    let kernel = [kernel_h as usize, kernel_w as usize];
    let out = registry::with(|r| ops::conv2d_w8a8(r.get(x)?, r.get(q)?, r.get(scales)?, optional(r, bias)?, kernel, &p))?;
    Ok(register(out))
}

#[allow(clippy::too_many_arguments)]
pub fn conv2d_q4(x: H, packed: H, scales: H, bias: Option<H>, kernel_h: u32, kernel_w: u32, stride_h: u32, stride_w: u32, pad_top: u32, pad_bottom: u32, pad_left: u32, pad_right: u32, dilation_h: u32, dilation_w: u32, groups: u32, block: u32) -> Result<H> {
    let p = conv_params([stride_h, stride_w], [pad_top, pad_bottom, pad_left, pad_right], [dilation_h, dilation_w], groups);
    let kernel = [kernel_h as usize, kernel_w as usize];
    let out = registry::with(|r| ops::conv2d_q4(r.get(x)?, r.get(packed)?, r.get(scales)?, optional(r, bias)?, kernel, &p, block as usize))?;
    Ok(register(out))
}
