//! Quantizing a float32 weight [O, I] into the formats of ops/quant (int8 per row, int4 per
//! block), and expanding it back whole (for inspection and tests; the layers never do).

use super::rows::dequantize_row;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::checked_numel;
use crate::params::quant::{Format, QuantWeights};
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;

/// w [O, I] float32 (checked by the op) -> (q [O, row bytes] int8, scales); a non-finite weight
/// is an error naming its position.
pub(crate) fn quantize(w: &Tensor, format: Format, op: &str) -> Result<(Tensor, Tensor)> {
    let (rows, cols) = (w.shape()[0], w.shape()[1]);
    let data = w.materialize()?;
    let data = data.cpu_slice::<f32>(op)?;
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

/// The float32 weight [O, in_features] that checked `weights` stand for.
pub(crate) fn dequantize(weights: &QuantWeights, op: &str) -> Result<Tensor> {
    let QuantWeights { format, in_features, .. } = *weights;
    let (q, scales) = (weights.q.materialize()?, weights.scales.materialize()?);
    let rows = q.shape()[0];
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &[rows, in_features])?)?;
    let (qs, ss) = (q.cpu_slice::<i8>(op)?, scales.cpu_slice::<f32>(op)?);
    let (row_bytes, row_scales) = format.row_sizes(in_features);
    if in_features > 0 {
        for (o, dst) in out.chunks_mut(in_features).enumerate() {
            dequantize_row(format, &qs[o * row_bytes..(o + 1) * row_bytes], &ss[o * row_scales..(o + 1) * row_scales], dst);
        }
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &[rows, in_features]))
}
