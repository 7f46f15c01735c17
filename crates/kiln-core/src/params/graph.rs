//! How `segment_reduce` combines the rows of one segment, and the index checks and messages the
//! graph ops and their kernels on every device share.

use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};

/// How `segment_reduce` combines the rows of one segment. An empty segment gives 0 for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentReduce {
    Sum,
    Mean,
    Max,
}

impl SegmentReduce {
    pub const ALL: &'static [SegmentReduce] = &[SegmentReduce::Sum, SegmentReduce::Mean, SegmentReduce::Max];

    pub fn name(self) -> &'static str {
        match self {
            SegmentReduce::Sum => "sum",
            SegmentReduce::Mean => "mean",
            SegmentReduce::Max => "max",
        }
    }
}

/// Checks that `t` (shape, dtype) is an int32 [E] index tensor; the GPU kernels share it.
pub fn expect_index(op: &str, what: &str, t: (&[usize], DType), edges: usize) -> Result<()> {
    let (shape, dtype) = t;
    if dtype != DType::I32 || shape != [edges] {
        return Err(KilnError::new(op, format!("{what} must be int32 [{edges}], got {} {}", dtype, fmt_shape(shape))));
    }
    Ok(())
}

/// The message for a bad entry `bad` at `position` of the index list `what` (src, dst,
/// segmentIds). The GPU kernels find bad entries on the device and fill in "{value}" and
/// "{position}" later, so both are text.
pub fn list_index_out_of_range(what: &str, bad: &str, position: &str, bound: usize, bound_what: &str) -> String {
    format!("{what} index {bad} at position {position} is out of range [0, {bound}) ({bound_what})")
}
