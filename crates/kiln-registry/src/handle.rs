//! Numbers from JavaScript that must be tensor handles. JS numbers are f64; a handle is a u32.
//! A plain `as u32` would turn 2^32 + 1 into 1 (another, live, tensor) and 1.5 into 1, so every
//! binding converts through these checks, which name the entry and the argument.

use kiln_core::KilnError;

/// The op of registry errors raised below the boundary; `name_entry` swaps in the entry's name.
pub const UNNAMED: &str = "kiln";

/// `v` as a handle, or an error naming `entry` and `arg` when it is not an integer in 0..2^32.
#[inline]
pub fn handle(entry: &str, arg: &str, v: f64) -> Result<u32, KilnError> {
    if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) {
        Ok(v as u32)
    } else {
        Err(KilnError::new(entry, format!("argument '{arg}' must be a tensor handle (an integer from 0 to 2^32 - 1), got {v}")))
    }
}

/// A handle or "none": a negative integer (the bindings pass -1) means no tensor.
#[inline]
pub fn optional_handle(entry: &str, arg: &str, v: f64) -> Result<Option<u32>, KilnError> {
    if v.fract() == 0.0 && v < 0.0 {
        return Ok(None);
    }
    handle(entry, arg, v).map(Some).map_err(|_| KilnError::new(entry, format!("argument '{arg}' must be a tensor handle or -1 for none, got {v}")))
}

/// Gives an error raised below the boundary (a dead handle) the name of the entry the user called.
pub fn name_entry(mut e: KilnError, entry: &str) -> KilnError {
    if e.op == UNNAMED {
        e.op = entry.to_string();
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_integers_in_u32_range() {
        assert_eq!(handle("add", "a", 7.0).unwrap(), 7);
        assert_eq!(handle("add", "a", u32::MAX as f64).unwrap(), u32::MAX);
        for bad in [2f64.powi(32) + 1.0, 1.5, -1.0, f64::NAN, f64::INFINITY] {
            let e = handle("add", "a", bad).unwrap_err().to_string();
            assert!(e.starts_with("add: argument 'a' must be a tensor handle"), "{e}");
        }
    }

    #[test]
    fn optional_handles_take_negative_integers_as_none() {
        assert_eq!(optional_handle("conv2d", "bias", -1.0).unwrap(), None);
        assert_eq!(optional_handle("conv2d", "bias", 3.0).unwrap(), Some(3));
        let e = optional_handle("conv2d", "bias", -0.5).unwrap_err().to_string();
        assert_eq!(e, "conv2d: argument 'bias' must be a tensor handle or -1 for none, got -0.5");
        assert!(optional_handle("conv2d", "bias", 2f64.powi(40)).is_err());
    }
}
