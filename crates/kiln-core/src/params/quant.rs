//! How a row of quantized weights is laid out (int8 per channel, int4 per block); see ops/quant.

use crate::error::{KilnError, Result};
use crate::tensor::Tensor;

/// How a row of quantized weights is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Int8,
    Int4 { block: usize },
}

impl Format {
    /// The int4 format, or an error naming `op` for a zero block.
    pub fn int4(op: &str, block: usize) -> Result<Format> {
        if block == 0 {
            return Err(KilnError::new(op, "block must be at least 1, got 0"));
        }
        Ok(Format::Int4 { block })
    }

    /// Bytes per stored row and scales per row for `in_features` weights.
    pub fn row_sizes(self, in_features: usize) -> (usize, usize) {
        match self {
            Format::Int8 => (in_features, 1),
            Format::Int4 { block } => (in_features.div_ceil(2), in_features.div_ceil(block)),
        }
    }
}

/// A quantized layer's weights as the op checked them: `q` [O, row bytes] int8 (int4: two
/// values per byte), `scales` float32 ([O] for int8, [O, row scales] for int4), and the length
/// of a row once expanded (a Linear's in_features, a conv's C/groups · kh · kw).
#[derive(Clone, Copy)]
pub struct QuantWeights<'a> {
    pub q: &'a Tensor,
    pub scales: &'a Tensor,
    pub format: Format,
    pub in_features: usize,
}
