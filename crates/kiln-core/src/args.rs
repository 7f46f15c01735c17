//! Validation of numbers that arrive from JavaScript, shared by every binding. JS numbers are
//! f64; a binding that cast them to integers directly would silently turn 2.5 into 2.

use crate::dtype::DType;
use crate::error::{KilnError, Result};

/// A shape: whole, non-negative numbers.
pub fn dims(op: &str, shape: &[f64]) -> Result<Vec<usize>> {
    shape
        .iter()
        .map(|&d| {
            if d.fract() == 0.0 && d >= 0.0 && d <= usize::MAX as f64 {
                Ok(d as usize)
            } else {
                Err(KilnError::new(op, format!("sizes must be non-negative integers, got {shape:?}")))
            }
        })
        .collect()
}

/// Axes, offsets or sizes that may be negative (-1 = last / to the end), as whole numbers.
pub fn ints(op: &str, v: &[f64]) -> Result<Vec<isize>> {
    v.iter()
        .map(|&a| {
            if a.fract() == 0.0 && a.abs() <= isize::MAX as f64 {
                Ok(a as isize)
            } else {
                Err(KilnError::new(op, format!("expected integers, got {v:?}")))
            }
        })
        .collect()
}

pub fn int(op: &str, a: f64) -> Result<isize> {
    Ok(ints(op, &[a])?[0])
}

/// A dtype by its TypeScript name.
pub fn dtype(op: &str, name: &str) -> Result<DType> {
    DType::from_name(name).ok_or_else(|| KilnError::new(op, format!("unknown dtype '{name}' (expected float32, int32 or bool)")))
}
