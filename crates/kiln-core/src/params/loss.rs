//! How a loss reduces its per-sample values.

use crate::error::{KilnError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Mean,
    Sum,
}

impl Reduction {
    pub fn from_code(code: u32) -> Result<Reduction> {
        match code {
            0 => Ok(Reduction::None),
            1 => Ok(Reduction::Mean),
            2 => Ok(Reduction::Sum),
            _ => Err(KilnError::new("crossEntropy", format!("unknown reduction code {code} (0 none, 1 mean, 2 sum)"))),
        }
    }
}

/// crossEntropy's message for a target outside [0, classes) at `row` (text: the GPU kernels fill
/// in "{value}" and "{position}" when they find one).
pub fn target_out_of_range(bad: &str, row: &str, classes: usize) -> String {
    format!("target {bad} at row {row} is out of range for {classes} classes")
}
