//! Weight-only quantization for inference: int8 per output channel, int4 per block of a row.
//!
//! Formats (weights [O, I], PyTorch's Linear layout; a conv filter is the row of its
//! in/groups · kh · kw weights):
//! - int8: q [O, I] int8, scales [O] float32; w[o, i] ≈ q[o, i] · scales[o], q in [-127, 127]
//!   (symmetric, scale = max|w[o, :]| / 127; -128 is never used so the range is symmetric).
//! - int4: packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)]; w[o, i] ≈ q · scales[o, i / block]
//!   with q in [-8, 7] (scale = max|block| / 7). Element 2j of a row is the low nibble of byte j,
//!   element 2j+1 the high nibble (two's complement); an odd row ends with a zero high nibble.
//!
//! The compute ops (`linear_q8`/`linear_q4` in linear.rs, `conv2d_q8`/`conv2d_q4` in conv.rs)
//! never hold the whole f32 weight: rows are expanded into a bounded tile
//! (device/cpu/quant/rows.rs) that feeds the GEMM. They are inference-only: there is no
//! backward, and asking for one is an error.
//!
//! `linear_w8a8` / `conv2d_w8a8` take the same int8 weights but also quantize the activations
//! (per call) and multiply int8 by int8 into i32 (device/cpu/quant/w8a8.rs): faster
//! than float, at the cost of the activations' rounding (one part in 254 of each input row's max
//! for a Linear, of each input image's max for a conv).
//!
//! The files here validate and shape; the kernels run on the inputs' device through the
//! `Device` trait (`quantized_linear`, `quantized_conv2d`, `quantize`, `dequantize`). Only the
//! CPU has them: on the GPU the trait's default refuses with an error naming the op and the
//! device ("linearQ8 has no kernel on the gpu device yet; move the tensors to the CPU ...").

mod codec;
mod conv;
mod linear;

pub use crate::device::cpu::quant::int8_gemm;

pub use codec::{dequantize_int4, dequantize_int8, quantize_int4, quantize_int8};
pub use conv::{conv2d_q4, conv2d_q8, conv2d_w8a8};
pub use linear::{linear_q4, linear_q8, linear_w8a8};

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::tensor::Tensor;

pub(crate) use crate::params::quant::{Format, QuantWeights};

/// The block length of int4 quantization unless the caller chooses another.
pub const INT4_BLOCK: usize = 32;

/// Checks a (weights, scales) pair against `format` and `in_features`.
fn checked_weights<'a>(op: &str, q: &'a Tensor, scales: &'a Tensor, format: Format, in_features: usize) -> Result<QuantWeights<'a>> {
    let rows = q.shape().first().copied().unwrap_or(0);
    let (row_bytes, row_scales) = format.row_sizes(in_features);
    let want_scales: Vec<usize> = if format == Format::Int8 { vec![rows] } else { vec![rows, row_scales] };
    let ok = q.dtype() == DType::I8
        && q.rank() == 2
        && q.shape()[1] == row_bytes
        && scales.dtype() == DType::F32
        && scales.shape() == want_scales.as_slice();
    if !ok {
        let what = match format {
            Format::Int8 => format!("weights int8 [outFeatures, {in_features}] and scales float32 [outFeatures]"),
            Format::Int4 { block } => format!(
                "packed weights int8 [outFeatures, {row_bytes}] and scales float32 [outFeatures, {row_scales}] (inFeatures {in_features}, block {block})"
            ),
        };
        return Err(KilnError::new(op, format!(
            "expected {what}, got weights {} {} and scales {} {}",
            q.dtype(), fmt_shape(q.shape()), scales.dtype(), fmt_shape(scales.shape())
        )));
    }
    Ok(QuantWeights { q, scales, format, in_features })
}

/// The error for a call that would need a gradient: the quantized ops have no backward, and a
/// silently missing gradient would be worse than a refusal.
fn refuse_gradients(op: &str, input: &Tensor, others: &[Option<&Tensor>]) -> Result<()> {
    let tracked = input.requires_grad() || others.iter().flatten().any(|t| t.requires_grad());
    if tracked && autograd::is_enabled() {
        return Err(KilnError::new(op, format!(
            "is inference-only (no gradient through quantized weights), but an input requires gradients \
             (input {} {}); run it under noGrad or detach the input",
            input.dtype(), fmt_shape(input.shape())
        )));
    }
    Ok(())
}

/// The tensors that pick a quantized layer's device: the input, the scales and the bias. Not the
/// int8 weights: no device but the CPU holds int8 (the GPU's buffers are float32, int32 and
/// bool), so an input on the GPU must get that device's refusal by name ("has no kernel on the
/// gpu device yet; move the tensors to the CPU"), not advice to move int8 weights to the GPU.
fn operands<'a>(x: &'a Tensor, w: &QuantWeights<'a>, bias: Option<&'a Tensor>) -> Vec<&'a Tensor> {
    [x, w.scales].into_iter().chain(bias).collect()
}
