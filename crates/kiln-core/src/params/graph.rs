//! How `segment_reduce` combines the rows of one segment.

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
