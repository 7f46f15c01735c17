//! The shape of one 2-D convolution, always seen from the convolution's side: a conv-transpose is
//! described by the convolution whose input gradient it is, so one set of kernels serves both.

/// Sizes of a convolution of `batch` images [channels, height, width] into
/// [out_channels, out_height, out_width]. Output row `oh` reads input rows
/// `oh·stride + ki·dilation - pad_top` (and likewise for columns); reads outside the image are
/// zeros (padding). Bottom/right padding is implied by the output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub out_height: usize,
    pub out_width: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Top and left padding.
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Geometry {
    /// Input channels per group.
    pub fn group_channels(&self) -> usize {
        self.channels / self.groups
    }
    /// Output channels per group.
    pub fn group_out_channels(&self) -> usize {
        self.out_channels / self.groups
    }
    /// Rows of one group's im2col matrix: the K of its GEMM (channels/groups · kh · kw).
    pub fn patch(&self) -> usize {
        self.group_channels() * self.kernel[0] * self.kernel[1]
    }
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    pub fn out_plane(&self) -> usize {
        self.out_height * self.out_width
    }
    pub fn out_image_len(&self) -> usize {
        self.out_channels * self.out_plane()
    }
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch()
    }
    /// A 1x1 kernel with unit stride and no padding: the image itself is its im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.out_height == self.height
            && self.out_width == self.width
    }
    /// Multiply-adds of the forward pass (each backward pass costs the same).
    pub fn macs(&self) -> usize {
        self.batch * self.out_image_len() * self.patch()
    }
}
