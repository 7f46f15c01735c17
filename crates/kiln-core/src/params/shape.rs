//! What the indexing ops (gather, scatterAdd, oneHot) and their kernels on every device share:
//! the index dtype check and the words of an index out of range.

use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};

/// Checks that gather's, scatterAdd's or oneHot's indices are int32; the GPU kernels share it.
pub fn expect_int_indices(op: &str, shape: &[usize], dtype: DType) -> Result<()> {
    if dtype != DType::I32 {
        return Err(KilnError::new(op, format!("indices must be int32, got {dtype} {}", fmt_shape(shape))));
    }
    Ok(())
}

/// oneHot's message for an index outside [0, depth) (text, as index_out_of_range).
pub fn one_hot_out_of_range(bad: &str, depth: usize) -> String {
    format!("index {bad} is out of range [0, {depth}) for depth [{depth}]")
}

/// The message for a bad gather/scatterAdd index `bad` along `axis` of `shape`. The GPU kernels
/// find bad indices on the device and fill in "{value}" later, so it takes the index as text.
pub fn index_out_of_range(bad: &str, shape: &[usize], axis: usize) -> String {
    format!("index {bad} is out of range [0, {}) for axis {axis} of shape {}", shape[axis], fmt_shape(shape))
}
