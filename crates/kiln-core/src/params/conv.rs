//! The shape of one 2-D convolution, always seen from the convolution's side: a conv-transpose is
//! described by the convolution whose input gradient it is, so one set of kernels serves both.

use crate::error::{KilnError, Result};
use crate::params::unary::UnaryOp;
use crate::tensor::Tensor;

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
    /// The unit-stride convolution whose forward is this one's input gradient: dy in, dx out,
    /// each filter turned 180° with its channel axes swapped, padding `(k-1)·d - pad`. None at
    /// other strides, or with a padding larger than the dilated kernel (output borders no tap
    /// reaches).
    pub fn input_grad_as_forward(&self) -> Option<Geometry> {
        let flipped = |i: usize| ((self.kernel[i] - 1) * self.dilation[i]).checked_sub(self.pad[i]);
        (self.stride == [1, 1]).then_some(())?;
        Some(Geometry {
            channels: self.out_channels,
            height: self.out_height,
            width: self.out_width,
            out_channels: self.channels,
            out_height: self.height,
            out_width: self.width,
            pad: [flipped(0)?, flipped(1)?],
            ..*self
        })
    }
}


/// An activation fused into a convolution: applied to each band of output rows right after its
/// GEMM, while the band is still in cache, instead of in a pass of its own over the whole output
/// (ONNX exporters' Conv -> Relu; ResNet-50 spends a fifth of its time in such passes otherwise).
///
/// Only activations whose derivative is a function of their output are taken (relu, leakyRelu
/// and elu with alpha >= 0, sigmoid, tanh): the fused op saves its output alone, so its gradient
/// stays exact without keeping the pre-activation tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    pub op: UnaryOp,
    /// leakyRelu's slope, elu's scale; ignored by the others.
    pub alpha: f32,
}

impl Activation {
    /// The fusable activations by name ('relu', 'leakyRelu', ...), checked, or an error naming
    /// `op` (the public function called) and what it takes.
    pub fn new(op: &str, name: &str, alpha: f32) -> Result<Activation> {
        let fusable = [UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Elu, UnaryOp::Sigmoid, UnaryOp::Tanh];
        let names = fusable.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        let Some(unary) = fusable.iter().copied().find(|a| a.name() == name) else {
            return Err(KilnError::new(op, format!("activation must be one of {names} (fused into the convolution's output), got '{name}'")));
        };
        if matches!(unary, UnaryOp::LeakyRelu | UnaryOp::Elu) && !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(KilnError::new(op, format!("a fused {name} needs a finite alpha >= 0 (its gradient is read from the output), got {alpha}")));
        }
        Ok(Activation { op: unary, alpha })
    }
}

/// What a convolution does to its output as it writes it: `residual` (a tensor of the output's
/// shape [N, O, OH, OW]) added, then `activation`, each block still in cache
/// (ResNet's `relu(bn(conv(x)) + identity)` as one pass). The default does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub residual: Option<&'a Tensor>,
    pub activation: Option<Activation>,
}

/// One filter set of a `conv2dConcat` (ops/conv_concat.rs): a convolution of the shared input,
/// checked, whose output takes the next `geo.out_channels` channels of the concatenated result.
#[derive(Clone, Copy, Debug)]
pub struct FilterSet<'a> {
    pub geo: Geometry,
    pub weight: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub activation: Option<Activation>,
}

/// Which way a reorder between NCHW and the channel-blocked NCHWc converts (ops/conv_nchwc.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reorder {
    /// NCHW -> NCHWc.
    ToBlocked,
    /// NCHWc -> NCHW.
    FromBlocked,
}
