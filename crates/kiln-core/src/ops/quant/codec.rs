//! Quantizing a float32 weight [O, I] into the formats of mod.rs, and expanding it back (for
//! inspection and tests; the compute ops never expand a whole weight): validation here, the
//! loops on the weight's device (on the CPU: device/cpu/quant/codec.rs).

use super::{checked_weights, Format};
use crate::device;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::tensor::Tensor;

/// Symmetric int8 per output channel. w [O, I] float32 -> (q [O, I] int8, scales [O] float32).
pub fn quantize_int8(w: &Tensor) -> Result<(Tensor, Tensor)> {
    quantize(w, Format::Int8, "quantizeInt8")
}

/// Symmetric int4 per block of `block` consecutive weights of a row, two values per byte.
/// w [O, I] float32 -> (packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)] float32).
pub fn quantize_int4(w: &Tensor, block: usize) -> Result<(Tensor, Tensor)> {
    if block == 0 {
        return Err(KilnError::new("quantizeInt4", format!("block must be at least 1, got 0 (weight {} {})", w.dtype(), fmt_shape(w.shape()))));
    }
    quantize(w, Format::Int4 { block }, "quantizeInt4")
}

fn quantize(w: &Tensor, format: Format, op: &str) -> Result<(Tensor, Tensor)> {
    if w.dtype() != DType::F32 || w.rank() != 2 {
        return Err(KilnError::new(op, format!("expected a float32 weight [outFeatures, inFeatures], got {} {}", w.dtype(), fmt_shape(w.shape()))));
    }
    device::dispatch(op, &[w])?.quantize(w, format, op)
}

/// The float32 weight an int8 quantization stands for. q [O, I] int8, scales [O] -> [O, I].
pub fn dequantize_int8(q: &Tensor, scales: &Tensor) -> Result<Tensor> {
    let in_features = q.shape().get(1).copied().unwrap_or(0);
    dequantize(q, scales, Format::Int8, in_features, "dequantizeInt8")
}

/// The float32 weight an int4 quantization stands for.
/// packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)] -> [O, in_features].
pub fn dequantize_int4(packed: &Tensor, scales: &Tensor, in_features: usize, block: usize) -> Result<Tensor> {
    dequantize(packed, scales, Format::int4("dequantizeInt4", block)?, in_features, "dequantizeInt4")
}

fn dequantize(q: &Tensor, scales: &Tensor, format: Format, in_features: usize, op: &str) -> Result<Tensor> {
    let weights = checked_weights(op, q, scales, format, in_features)?;
    // The scales pick the device, not the int8 weights (see `operands` in mod.rs).
    device::dispatch(op, &[scales])?.dequantize(&weights, op)
}
