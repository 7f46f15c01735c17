//! Quantizing a float32 weight [O, I] into the formats of mod.rs, and expanding it back (for
//! inspection and tests; the compute ops never expand a whole weight).

use crate::device::cpu::quant::rows::dequantize_row;
use super::{checked_weights, Format};
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::checked_numel;
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;

/// Symmetric int8 per output channel. w [O, I] float32 -> (q [O, I] int8, scales [O] float32).
pub fn quantize_int8(w: &Tensor) -> Result<(Tensor, Tensor)> {
    crate::device::cpu_only("quantizeInt8", &[Some(w)])?;
    quantize(w, Format::Int8, "quantizeInt8")
}

/// Symmetric int4 per block of `block` consecutive weights of a row, two values per byte.
/// w [O, I] float32 -> (packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)] float32).
pub fn quantize_int4(w: &Tensor, block: usize) -> Result<(Tensor, Tensor)> {
    crate::device::cpu_only("quantizeInt4", &[Some(w)])?;
    if block == 0 {
        return Err(KilnError::new("quantizeInt4", format!("block must be at least 1, got 0 (weight {} {})", w.dtype(), fmt_shape(w.shape()))));
    }
    quantize(w, Format::Int4 { block }, "quantizeInt4")
}

fn quantize(w: &Tensor, format: Format, op: &str) -> Result<(Tensor, Tensor)> {
    if w.dtype() != DType::F32 || w.rank() != 2 {
        return Err(KilnError::new(op, format!("expected a float32 weight [outFeatures, inFeatures], got {} {}", w.dtype(), fmt_shape(w.shape()))));
    }
    let (rows, cols) = (w.shape()[0], w.shape()[1]);
    let data = w.materialize()?;
    let data = data.contiguous_slice::<f32>().expect("materialized float32");
    if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
        return Err(KilnError::new(op, format!(
            "weight {} {} has a non-finite value ({}) at [{}, {}]; only finite weights can be quantized",
            w.dtype(), fmt_shape(w.shape()), data[bad], bad / cols.max(1), bad % cols.max(1)
        )));
    }
    let (row_bytes, row_scales) = format.row_sizes(cols);
    let mut q = try_zeroed::<i8>(op, checked_numel(op, &[rows, row_bytes])?)?;
    let mut scales = try_zeroed::<f32>(op, checked_numel(op, &[rows, row_scales])?)?;
    if cols > 0 {
        for ((src, dst), s) in data.chunks(cols).zip(q.chunks_mut(row_bytes)).zip(scales.chunks_mut(row_scales)) {
            match format {
                Format::Int8 => s[0] = quantize_group(src, 127.0, |j, v| dst[j] = v),
                Format::Int4 { block } => {
                    for (b, chunk) in src.chunks(block).enumerate() {
                        let base = b * block;
                        s[b] = quantize_group(chunk, 7.0, |j, v| {
                            let i = base + j;
                            let nibble = (v as u8) & 0x0f;
                            let byte = &mut dst[i / 2];
                            *byte = if i % 2 == 0 { (*byte as u8 & 0xf0 | nibble) as i8 } else { (*byte as u8 & 0x0f | nibble << 4) as i8 };
                        });
                    }
                }
            }
        }
    }
    let scale_shape: &[usize] = if format == Format::Int8 { &[rows] } else { &[rows, row_scales] };
    Ok((Tensor::from_buffer(Buffer::I8(q), &[rows, row_bytes]), Tensor::from_buffer(Buffer::F32(scales), scale_shape)))
}

/// Quantizes one group to integers in [-levels, levels], handing each to `put(index, q)`;
/// returns the scale (0 for an all-zero group, whose integers are then all 0).
fn quantize_group(values: &[f32], levels: f32, mut put: impl FnMut(usize, i8)) -> f32 {
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return 0.0;
    }
    let scale = max / levels;
    for (j, &v) in values.iter().enumerate() {
        put(j, (v / scale).round().clamp(-levels, levels) as i8);
    }
    scale
}

// ---- dequantization ------------------------------------------------------------------------

/// The float32 weight an int8 quantization stands for. q [O, I] int8, scales [O] -> [O, I].
pub fn dequantize_int8(q: &Tensor, scales: &Tensor) -> Result<Tensor> {
    crate::device::cpu_only("dequantizeInt8", &[Some(q), Some(scales)])?;
    let in_features = q.shape().get(1).copied().unwrap_or(0);
    dequantize(q, scales, Format::Int8, in_features, "dequantizeInt8")
}

/// The float32 weight an int4 quantization stands for.
/// packed [O, ceil(I/2)] int8, scales [O, ceil(I/block)] -> [O, in_features].
pub fn dequantize_int4(packed: &Tensor, scales: &Tensor, in_features: usize, block: usize) -> Result<Tensor> {
    crate::device::cpu_only("dequantizeInt4", &[Some(packed), Some(scales)])?;
    dequantize(packed, scales, Format::int4("dequantizeInt4", block)?, in_features, "dequantizeInt4")
}

fn dequantize(q: &Tensor, scales: &Tensor, format: Format, in_features: usize, op: &str) -> Result<Tensor> {
    let (q, scales) = checked_weights(op, q, scales, format, in_features)?;
    let rows = q.shape()[0];
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &[rows, in_features])?)?;
    let (qs, ss) = (q.contiguous_slice::<i8>().unwrap(), scales.contiguous_slice::<f32>().unwrap());
    let (row_bytes, row_scales) = format.row_sizes(in_features);
    if in_features > 0 {
        for (o, dst) in out.chunks_mut(in_features).enumerate() {
            dequantize_row(format, &qs[o * row_bytes..(o + 1) * row_bytes], &ss[o * row_scales..(o + 1) * row_scales], dst);
        }
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &[rows, in_features]))
}

