//! Where a [B, H, T, D] operand or result of attention lives in its buffer: head-major, or
//! position-major (heads interleaved per position, the memory order of a projection split into
//! heads), so the kernels read and write either without a copy.

use crate::error::Result;
use crate::storage::try_zeroed;
use crate::tensor::Tensor;

const OP: &str = "attention";

/// Where the rows of a [B, H, T, D] result live in its buffer.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    /// Buffer strides of b, h and t (d is contiguous).
    strides: [usize; 3],
    /// [B, T, H, D] memory order (heads interleaved per position) rather than [B, H, T, D].
    heads_inner: bool,
}

impl Layout {
    /// The layout of a result shaped like `like`: head-major when `like` is contiguous, else
    /// position-major (the memory order of a projection split into heads).
    pub(super) fn like(like: &Tensor, t: usize, d: usize) -> Layout {
        let heads = like.shape()[1];
        if like.is_contiguous() {
            Layout { strides: [heads * t * d, t * d, d], heads_inner: false }
        } else {
            Layout { strides: [t * heads * d, d, heads * d], heads_inner: true }
        }
    }

    pub(super) fn row_offset(&self, b: usize, h: usize, t: usize) -> usize {
        b * self.strides[0] + h * self.strides[1] + t * self.strides[2]
    }

    /// A zeroed result of logical shape [B, H, T, D] in this layout, and its buffer to fill.
    /// Made as a tensor first so its bytes count in memory() while the kernel runs.
    pub(super) fn allocate(&self, shape: [usize; 4]) -> Result<Tensor> {
        let [b, h, t, d] = shape;
        Tensor::from_vec(try_zeroed::<f32>(OP, b * h * t * d)?, &self.physical(shape))
    }

    /// As `allocate`, not zeroed: the forward kernel writes every row (no key visible: zeros),
    /// and the zero fill was 1.3% of its samples at T = 128.
    ///
    /// # Safety
    /// Every element is written before it is read (as storage::Scratch::unwritten).
    pub(super) unsafe fn allocate_unwritten(&self, shape: [usize; 4]) -> Result<Tensor> {
        let physical = self.physical(shape);
        let n = crate::layout::checked_numel(OP, &physical)?;
        let mut data = crate::alloc::try_with_capacity::<f32>(OP, n)?;
        data.set_len(n);
        Tensor::from_vec(data, &physical)
    }

    /// The buffer's shape for logical [B, H, T, D].
    fn physical(&self, [b, h, t, d]: [usize; 4]) -> [usize; 4] {
        if self.heads_inner { [b, t, h, d] } else { [b, h, t, d] }
    }

    /// The filled buffer seen in the logical [B, H, T, D] order.
    pub(super) fn finish(&self, physical: Tensor) -> Result<Tensor> {
        if self.heads_inner { physical.permute(&[0, 2, 1, 3]) } else { Ok(physical) }
    }
}
