//! Convolutions in the channel-blocked layout NCHWc (c = BLOCK = 16, one AVX-512 vector of
//! channels), the layout onnxruntime's MLAS convolutions run in: an activation [N, C, H, W] is
//! stored as [N, ceil(C/16), H, W, 16], so every pixel's 16 channels of one block are one vector
//! and a convolution's inner step is "broadcast one input value, multiply-add a vector of 16
//! filters" into a register tile of output pixels x output-channel blocks, with full vectors on
//! every image size (NCHW kernels waste lanes on 7x7 and 14x14 planes). Channels past C in the
//! last block are padding: filters are zero there, so their values never reach a result.
//!
//! This file fixes the layout and the functions' contracts; behind them: kernel.rs (the AVX-512
//! forward: register tiles of 4 output blocks x 6 pixels), winograd.rs (AVX-512: 3x3 stride-1
//! convolutions of enough tiles by Winograd F(2x2, 3x3), its 16 products run by kernel.rs as 1x1
//! convolutions), reference.rs (plain loops: other CPUs, wasm32, and the tests' second opinion),
//! reorder.rs (NCHW <-> NCHWc, 16x16 transposes).
//!
//! Layouts (all float32, row-major, BLOCK = 16):
//! - activations: [N, blocks(C), H, W, BLOCK]; a first convolution's input (an image's 3
//!   colours) may also be plain NCHW [N, C, H, W] with C <= 16 (`forward_plain_input`);
//! - packed filters: [blocks(O), blocks(C), KH, KW, BLOCK (input channel), BLOCK (output channel)],
//!   zero where o >= O or c >= C (one group only);
//! - bias: [blocks(O)·BLOCK], zero past O.

use super::epilogue::SliceEpilogue;
use crate::params::conv::{Activation, Geometry};

pub mod bench;
#[cfg(target_arch = "x86_64")]
mod kernel;
mod reference;
mod reorder;
#[cfg(target_arch = "x86_64")]
mod winograd;

/// Channels of one block: one AVX-512 vector of f32.
pub(crate) const BLOCK: usize = 16;

/// Blocks that hold `channels` channels.
pub(crate) fn blocks(channels: usize) -> usize {
    channels.div_ceil(BLOCK)
}

/// Floats of an activation of `batch` images of `channels` channels of `plane` positions in NCHWc.
pub(crate) fn blocked_len(batch: usize, channels: usize, plane: usize) -> usize {
    batch * blocks(channels) * plane * BLOCK
}

/// Floats of `geo`'s packed filters.
pub(crate) fn packed_filters_len(geo: &Geometry) -> usize {
    blocks(geo.out_channels) * blocks(geo.channels) * geo.kernel[0] * geo.kernel[1] * BLOCK * BLOCK
}

/// A convolution's filters: the packed taps and, where the caller keeps it, their Winograd
/// transform (`winograd_filters`), which winograd.rs otherwise computes on every call.
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    pub taps: &'a [f32],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub winograd: Option<&'a [f32]>,
}

impl<'a> Packed<'a> {
    /// Packed filters alone.
    pub(crate) fn taps(taps: &'a [f32]) -> Packed<'a> {
        Packed { taps, winograd: None }
    }
}

/// The forward convolution `geo` (groups == 1) in NCHWc: x [N, blocks(C), H, W, 16], packed
/// filters `w`, `bias` [blocks(O)·16] or none -> y [N, blocks(O), OH, OW, 16], every float of y
/// written (padded channels included), then the epilogue: `epilogue.residual` (y's layout and
/// length) added, `epilogue.activation` applied.
///
/// `run` picks the kernel.
pub(crate) fn forward(geo: &Geometry, x: &[f32], w: Packed, bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32]) {
    assert!(epilogue.residual.is_none_or(|r| r.len() == y.len()), "nchwc::forward: the residual's length is not the output's");
    run(geo, Input::Blocked, x, w, bias, epilogue, y, OutBlocks { per_image: blocks(geo.out_channels), first: 0 })
}

/// `forward` of a plain NCHW x [N, C, H, W] with C <= 16 (packed filters of one input block):
/// a network's first convolution writes the blocked layout straight away, so what follows it
/// (SqueezeNet's and ResNet-50's stem MaxPool) runs blocked with no reorder in between. Only
/// the C channels are multiplied (not 16 lanes of which 13 are padding), each read a plane
/// apart, as MLAS's NCHW-input kernel does.
pub(crate) fn forward_plain_input(geo: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32]) {
    assert!(geo.channels <= BLOCK, "nchwc::forward_plain_input: {} input channels, at most {BLOCK}", geo.channels);
    assert!(epilogue.residual.is_none_or(|r| r.len() == y.len()), "nchwc::forward_plain_input: the residual's length is not the output's");
    run(geo, Input::Plain, x, Packed::taps(w), bias, epilogue, y, OutBlocks { per_image: blocks(geo.out_channels), first: 0 })
}

/// The layout of a forward's input x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// [N, blocks(C), H, W, 16].
    Blocked,
    /// [N, C, H, W], C <= 16.
    Plain,
}

/// Where a forward's output blocks go: blocks `first..first + blocks(O)` of images of
/// `per_image` blocks, [N, per_image, OH, OW, 16].
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutBlocks {
    pub per_image: usize,
    pub first: usize,
}

/// `forward` (no residual) into blocks `out.first..out.first + blocks(O)` of y [N, out.per_image,
/// OH, OW, 16]: several convolutions of one input concatenated on channels (SqueezeNet's fire
/// modules) written in place, with no concat pass. Each set but the last must have a multiple of
/// 16 output channels for the channels to follow on (its padded channels would sit in between
/// otherwise). Only the set's blocks of y are written.
pub(crate) fn forward_into(geo: &Geometry, x: &[f32], w: Packed, bias: Option<&[f32]>, activation: Option<Activation>, y: &mut [f32], out: OutBlocks) {
    assert!(out.first + blocks(geo.out_channels) <= out.per_image, "nchwc::forward_into: blocks {}..{} of {} per image", out.first, out.first + blocks(geo.out_channels), out.per_image);
    run(geo, Input::Blocked, x, w, bias, SliceEpilogue { residual: None, activation }, y, out)
}

/// Whether a forward of `geo` runs Winograd (winograd.rs `applies`: AVX-512, 3x3 stride 1, enough
/// tiles), so that a caller may keep `winograd_filters` with the packed filters.
#[cfg(target_arch = "x86_64")]
pub(crate) fn winograd_runs(geo: &Geometry) -> bool {
    winograd::applies(geo)
}

/// The Winograd transform of `geo`'s packed 3x3 filters `w` (`winograd_runs(geo)`), for a caller
/// that keeps it with them (`Packed::winograd`): 16/9 of their floats, made once instead of on
/// every call; an error naming `op` if the memory cannot be had.
#[cfg(target_arch = "x86_64")]
pub(crate) fn winograd_filters(geo: &Geometry, w: &[f32], op: &str) -> crate::error::Result<Vec<f32>> {
    winograd::transform_filters(geo, w, op)
}

/// `forward` and `forward_into`: on AVX-512, winograd.rs where it `applies`, else kernel.rs's
/// register tiles; elsewhere (other x86-64 CPUs, wasm32) reference.rs's plain loops.
#[allow(clippy::too_many_arguments)]
fn run(geo: &Geometry, input: Input, x: &[f32], filters: Packed, bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], out: OutBlocks) {
    let w = filters.taps;
    assert_eq!(geo.groups, 1, "nchwc::forward: one group only");
    let (in_plane, out_plane) = (geo.height * geo.width, geo.out_plane());
    let x_len = match input {
        Input::Blocked => blocked_len(geo.batch, geo.channels, in_plane),
        Input::Plain => geo.batch * geo.channels * in_plane,
    };
    assert!(
        x.len() == x_len
            && w.len() == packed_filters_len(geo)
            && y.len() == geo.batch * out.per_image * out_plane * BLOCK
            && bias.is_none_or(|b| b.len() == blocks(geo.out_channels) * BLOCK),
        "nchwc::forward: operand lengths do not match the geometry"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::SimdLevel::Avx512 {
        // Winograd where it pays; if its scratch cannot be had, the direct tiles (which need
        // none) give the same result.
        if input == Input::Blocked && winograd::applies(geo) && winograd::forward(geo, x, w, filters.winograd, bias, epilogue, y, out).is_ok() {
            return;
        }
        return kernel::forward_from(geo, input, x, w, bias, epilogue, y, out);
    }
    reference::forward(geo, input, x, w, bias, epilogue, y, out)
}

/// NCHW [N, C, plane] -> NCHWc [N, blocks(C), plane, 16], padded channels zero.
pub(crate) fn to_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    assert!(x.len() == batch * channels * plane && y.len() == blocked_len(batch, channels, plane), "nchwc::to_blocked: lengths do not match");
    reorder::to_blocked(x, batch, channels, plane, y)
}

/// NCHWc [N, blocks(C), plane, 16] -> NCHW [N, C, plane] (padded channels dropped).
pub(crate) fn from_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    assert!(x.len() == blocked_len(batch, channels, plane) && y.len() == batch * channels * plane, "nchwc::from_blocked: lengths do not match");
    reorder::from_blocked(x, batch, channels, plane, y)
}

/// Filters [O, C, KH, KW] (one group) -> packed [blocks(O), blocks(C), KH, KW, 16 (c), 16 (o)],
/// zero past O and C.
pub(crate) fn pack_filters(geo: &Geometry, w: &[f32], packed: &mut [f32]) {
    let (o_count, c_count) = (geo.out_channels, geo.channels);
    let (kh, kw) = (geo.kernel[0], geo.kernel[1]);
    debug_assert_eq!(w.len(), o_count * c_count * kh * kw);
    debug_assert_eq!(packed.len(), packed_filters_len(geo));
    let cb = blocks(c_count);
    packed.fill(0.0);
    for o in 0..o_count {
        for c in 0..c_count {
            for ki in 0..kh {
                for kj in 0..kw {
                    let dst = (((o / BLOCK * cb + c / BLOCK) * kh + ki) * kw + kj) * BLOCK * BLOCK + (c % BLOCK) * BLOCK + o % BLOCK;
                    packed[dst] = w[((o * c_count + c) * kh + ki) * kw + kj];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
