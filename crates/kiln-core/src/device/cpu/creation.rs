//! The CPU's constant tensors (creation ops, and zeros inside backward closures).

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::layout::checked_numel;
use crate::storage::{try_filled, Buffer};
use crate::tensor::Tensor;

/// `full` reporting errors as `op` (zeros, ones, ...).
pub(crate) fn full(op: &str, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
    let n = checked_numel(op, shape)?;
    let buffer = match dtype {
        DType::F32 => Buffer::F32(try_filled(op, n, value as f32)?),
        DType::I32 => Buffer::I32(try_filled(op, n, value as i32)?),
        DType::Bool => Buffer::Bool(try_filled(op, n, (value != 0.0) as u8)?),
        other => return Err(KilnError::new(op, format!("dtype {other} is not supported yet (use float32, int32 or bool)"))),
    };
    Ok(Tensor::from_buffer(buffer, shape))
}

