//! Validation of numbers that arrive from JavaScript, shared by every binding. JS numbers are
//! f64; a binding that cast them to integers directly would silently turn 2.5 into 2.

use crate::dtype::DType;
use crate::error::{KilnError, Result};

/// The largest size a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER, 2^53 - 1).
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// The largest dimension this build can address: 2^53 - 1 on 64-bit hosts (a larger number is
/// not exact in JavaScript), `usize::MAX` (2^32 - 1) on wasm32.
pub fn max_dim() -> f64 {
    MAX_SAFE_INTEGER.min(usize::MAX as f64)
}

/// A shape: whole, non-negative numbers, each one addressable by this build. Dimensions cross
/// the boundary as f64 (never as u32, which silently truncated 2^32 + 5 to 5).
pub fn dims(op: &str, shape: &[f64]) -> Result<Vec<usize>> {
    shape
        .iter()
        .map(|&d| {
            if !(d.fract() == 0.0 && d >= 0.0) {
                Err(KilnError::new(op, format!("sizes must be non-negative integers, got {}", fmt_numbers(shape))))
            } else if d > max_dim() {
                Err(KilnError::new(op, format!(
                    "dimension {d} in shape {} is larger than this backend can address (at most {} per dimension on a {}-bit build)",
                    fmt_numbers(shape), max_dim(), usize::BITS
                )))
            } else {
                Ok(d as usize)
            }
        })
        .collect()
}

/// Numbers from JavaScript as JavaScript prints them ([0, 4294967301], not [0.0, 4294967301.0]).
fn fmt_numbers(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| if x.fract() == 0.0 && x.abs() < 1e21 { format!("{x:.0}") } else { x.to_string() }).collect();
    format!("[{}]", parts.join(", "))
}

/// Axes, offsets or sizes that may be negative (-1 = last / to the end), as whole numbers.
pub fn ints(op: &str, v: &[f64]) -> Result<Vec<isize>> {
    // isize, not usize: on a 32-bit build (WASM) `as isize` would saturate 2^31 to 2^31 - 1, and
    // the op would report a value the caller never passed.
    let max = MAX_SAFE_INTEGER.min(isize::MAX as f64);
    v.iter()
        .map(|&a| {
            if a.fract() != 0.0 || a.is_nan() {
                Err(KilnError::new(op, format!("expected integers, got {}", fmt_numbers(v))))
            } else if a.abs() > max {
                Err(KilnError::new(op, format!(
                    "{a} in {} is larger than this backend can address (at most {max} on a {}-bit build)",
                    fmt_numbers(v), usize::BITS
                )))
            } else {
                Ok(a as isize)
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
