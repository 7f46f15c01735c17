//! The three convolution passes on the CPU (engine.rs, over im2col.rs's patch copies; depthwise.rs
//! for one input channel per group; direct.rs for unit-stride dense convolutions on AVX-512,
//! pointwise.rs for the forward of 1x1 convolutions of 8 to 64 input channels on AVX-512,
//! few_channels.rs for those with 1 to 7 input channels (forward at strides up to the kernel's
//! size, weight gradient; the input gradient in few_channels_dx.rs);
//! winograd.rs for the forward pass and input gradient of 3x3 stride-1 convolutions with enough
//! channels, on wasm32 and on AVX-512, ahead of direct.rs): a conv-transpose's
//! forward is a convolution's input gradient, so ops/conv.rs runs both ops on these three.

pub(crate) mod blocked;
mod depthwise;
#[cfg(target_arch = "x86_64")]
pub(crate) mod direct;
#[cfg(target_arch = "x86_64")]
mod few_channels;
#[cfg(target_arch = "x86_64")]
mod few_channels_dx;
pub(crate) mod engine;
mod epilogue;
mod im2col;
mod lanes;
// The channel-blocked layout and its kernels (issue 15): wired into an op next.
#[allow(dead_code)]
pub(crate) mod nchwc;
#[cfg(target_arch = "x86_64")]
mod pointwise;
mod winograd;

use crate::error::Result;
use crate::params::conv::{Epilogue, FilterSet, Geometry};
use crate::tensor::Tensor;
use epilogue::SliceEpilogue;

/// The forward kernels, in the order they are tried: the first that applies runs (`kernel_for`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Depthwise,
    FewChannels,
    Pointwise,
    Winograd,
    Direct,
    Gemm,
}

/// The one place that picks a convolution's forward kernel (`forward` and `forward_concat`).
fn kernel_for(geo: &Geometry) -> Kernel {
    if depthwise::applies(geo) {
        Kernel::Depthwise
    } else if few_channels_applies_to_forward(geo) {
        Kernel::FewChannels
    } else if pointwise_applies(geo) {
        Kernel::Pointwise
    } else if winograd::applies(geo) {
        Kernel::Winograd
    } else if direct_applies(geo) && direct_pays(geo) {
        Kernel::Direct
    } else {
        Kernel::Gemm
    }
}

/// Images of at most SMALL_IMAGE output positions with at most SMALL_IMAGE_MAX_CHANNELS input
/// channels stay on im2col + GEMM: forward with bias and relu (examples/cnn_convs.rs, batch 1
/// and 8, loaded machine, GFLOP per CPU-second, direct / GEMM), SqueezeNet's 3x3 64->256 at 13x13
/// ran faster on the GEMM in 11 of 12 pairs (e.g. 85 / 137, 120 / 150) and its 48->192 at 13x13
/// in 5 of 6 (73 / 117, 95 / 126), while ResNet-50's 3x3 256->256 at 14x14 and 512->512 at 7x7
/// stayed ahead on direct.rs (138 / 121, 126 / 120). (Winograd declines 13x13: row tiles.)
const SMALL_IMAGE: usize = 14 * 14;
const SMALL_IMAGE_MAX_CHANNELS: usize = 64;

/// Whether direct.rs's forward beats im2col + GEMM on `geo` (direct.rs applies), as measured;
/// `KILN_CONV_PATH=direct` takes direct.rs wherever it applies (its tests, a comparison).
fn direct_pays(geo: &Geometry) -> bool {
    geo.out_plane() > SMALL_IMAGE || geo.channels > SMALL_IMAGE_MAX_CHANNELS || std::env::var_os("KILN_CONV_PATH").is_some_and(|v| v == "direct")
}

/// engine::forward: [N, O, OH, OW], then the epilogue (epilogue.rs): the residual added, the
/// activation applied.
pub(crate) fn forward(geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
    let (x, w) = (x.materialize()?, w.materialize()?);
    let residual = epilogue.residual.map(|r| r.materialize()).transpose()?;
    let b = bias.map(|b| b.elements::<f32>(op)).transpose()?;
    let (xs, ws) = (x.cpu_slice(op)?, w.cpu_slice(op)?);
    let epilogue = SliceEpilogue { residual: residual.as_ref().map(|r| r.cpu_slice(op)).transpose()?, activation: epilogue.activation };
    let out = forward_owned(kernel_for(geo), geo, xs, ws, b.as_deref(), epilogue, op)?;
    Tensor::from_vec(out, &[geo.batch, geo.out_channels, geo.out_height, geo.out_width])
}

/// The forward of `geo` on `kernel` into a vector of its own, [N, O, OH, OW], epilogue included.
fn forward_owned(kernel: Kernel, geo: &Geometry, xs: &[f32], ws: &[f32], b: Option<&[f32]>, epilogue: SliceEpilogue, op: &str) -> Result<Vec<f32>> {
    Ok(match kernel {
        Kernel::Depthwise => {
            let mut out = depthwise::forward(geo, xs, ws, b, op)?;
            finish_whole_output(geo, epilogue, &mut out);
            out
        }
        // few_channels.rs runs the epilogue on each unit's band, direct.rs on each tile as it
        // copies it out.
        Kernel::FewChannels => few_channels_forward(geo, xs, ws, b, epilogue, op)?,
        Kernel::Pointwise => pointwise_forward(geo, xs, ws, b, epilogue, op)?,
        Kernel::Winograd => {
            let mut out = winograd::forward(geo, xs, ws, b, op)?;
            finish_whole_output(geo, epilogue, &mut out);
            out
        }
        Kernel::Direct => direct_forward(geo, xs, ws, b, epilogue, op)?,
        Kernel::Gemm => engine::forward_fused(geo, xs, &engine::Dense(ws), b, epilogue, op)?,
    })
}

/// Several convolutions of `x`, their outputs concatenated on channels ([N, ΣO, OH, OW]): each
/// set's kernel writes its image n straight into channels offset.. of image n of the result
/// (planes ΣO·OH·OW floats apart from one image to the next), so no concat pass reads and
/// writes the whole output again (SqueezeNet's fire modules: 4.8-5.6 ms of CPU per batch-8
/// inference in their Concats). The kernels that write in other orders (depthwise,
/// few-channel) run into a buffer of their own that is copied into the slice.
pub(crate) fn forward_concat(x: &Tensor, sets: &[FilterSet], op: &str) -> Result<Tensor> {
    let first = sets.first().expect("conv2dConcat: checked to have filter sets").geo;
    let total: usize = sets.iter().map(|s| s.geo.out_channels).sum();
    let plane = first.out_plane();
    let image_stride = total * plane;
    let x = x.materialize()?;
    let xs = x.cpu_slice(op)?;
    // SAFETY: the sets cover channels 0..total of every image, each writing all of its slice.
    let out = unsafe {
        crate::alloc::try_written(op, first.batch * image_stride, |out: *mut f32| {
            let mut offset = 0;
            for set in sets {
                let w = set.weight.materialize()?;
                let b = set.bias.map(|b| b.elements::<f32>(op)).transpose()?;
                let epilogue = SliceEpilogue { residual: None, activation: set.activation };
                let slot = Slot { out: out.add(offset * plane), image_stride };
                forward_into(&set.geo, xs, w.cpu_slice(op)?, b.as_deref(), epilogue, slot, op)?;
                offset += set.geo.out_channels;
            }
            Ok(())
        })?
    };
    Tensor::from_vec(out, &[first.batch, total, first.out_height, first.out_width])
}

/// Where a strided forward writes: image n's [O, OH, OW] planes at `out + n·image_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    pub out: *mut f32,
    pub image_stride: usize,
}

/// The forward of `geo` (no residual) into `slot`, with `kernel_for`'s kernel.
///
/// SAFETY: slot valid for writes of image n's O·OH·OW floats at out + n·image_stride, n < batch,
/// and written by no one else during the call.
unsafe fn forward_into(geo: &Geometry, xs: &[f32], ws: &[f32], b: Option<&[f32]>, epilogue: SliceEpilogue, slot: Slot, op: &str) -> Result<()> {
    debug_assert!(epilogue.residual.is_none(), "conv: a strided forward takes no residual");
    let plane = geo.out_plane();
    let image = geo.out_image_len();
    // The epilogue over each image's slice, for the kernels that do not run it as they write.
    let finish = |slot: Slot| {
        for n in 0..geo.batch {
            epilogue.apply(slot.out, n * slot.image_stride, geo.out_channels, plane, plane);
        }
    };
    match kernel_for(geo) {
        Kernel::Pointwise => pointwise_forward_into(geo, xs, ws, b, epilogue, slot, op),
        Kernel::Winograd => {
            winograd::forward_into(geo, xs, ws, b, slot, op)?;
            finish(slot);
            Ok(())
        }
        Kernel::Direct => direct_forward_into(geo, xs, ws, b, epilogue, slot, op),
        Kernel::Gemm => engine::forward_fused_into(geo, xs, &engine::Dense(ws), b, epilogue, slot, op),
        kernel => {
            let own = forward_owned(kernel, geo, xs, ws, b, epilogue, op)?;
            for n in 0..geo.batch {
                std::ptr::copy_nonoverlapping(own[n * image..].as_ptr(), slot.out.add(n * slot.image_stride), image);
            }
            Ok(())
        }
    }
}

/// The epilogue over a whole [N·O, OH·OW] output, for the kernels that do not run it per band.
fn finish_whole_output(geo: &Geometry, epilogue: SliceEpilogue, out: &mut [f32]) {
    let plane = geo.out_plane();
    debug_assert_eq!(out.len(), geo.batch * geo.out_channels * plane);
    // SAFETY: `out` is this call's own [N·O, OH·OW] vector, borrowed mutably.
    unsafe { epilogue.apply(out.as_mut_ptr(), 0, geo.batch * geo.out_channels, plane, plane) };
}

/// engine::input_grad: [N, C, H, W], plus `init` per channel.
pub(crate) fn input_grad(geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
    let (dy, w) = (dy.materialize()?, w.materialize()?);
    let init = init.map(|b| b.elements::<f32>(op)).transpose()?;
    let (dys, ws) = (dy.cpu_slice(op)?, w.cpu_slice(op)?);
    let dx = if depthwise::applies(geo) {
        depthwise::input_grad(geo, dys, ws, init.as_deref(), op)?
    } else if winograd::applies_to_input_grad(geo) {
        winograd::input_grad(geo, dys, ws, init.as_deref(), op)?
    } else if direct_applies_to_input_grad(geo) {
        direct_input_grad(geo, dys, ws, init.as_deref(), op)?
    } else if few_channels_dx_applies(geo) {
        few_channels_input_grad(geo, dys, ws, init.as_deref(), op)?
    } else {
        engine::input_grad(geo, dys, ws, init.as_deref(), op)?
    };
    Tensor::from_vec(dx, &[geo.batch, geo.channels, geo.height, geo.width])
}

/// engine::weight_grad: [O, C/groups, KH, KW].
pub(crate) fn weight_grad(geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
    let (x, dy) = (x.materialize()?, dy.materialize()?);
    let (xs, dys) = (x.cpu_slice(op)?, dy.cpu_slice(op)?);
    let dw = if depthwise::applies(geo) {
        depthwise::weight_grad(geo, xs, dys, op)?
    } else if few_channels_applies(geo) {
        few_channels_weight_grad(geo, xs, dys, op)?
    } else if direct_applies(geo) {
        direct_weight_grad(geo, xs, dys, op)?
    } else {
        engine::weight_grad(geo, xs, dys, op)?
    };
    Tensor::from_vec(dw, &[geo.out_channels, geo.group_channels(), geo.kernel[0], geo.kernel[1]])
}

// direct.rs and few_channels.rs are x86-64 only (AVX-512 intrinsics); elsewhere these say
// "never" and are never run.
#[cfg(target_arch = "x86_64")]
use direct::{
    applies as direct_applies, applies_to_input_grad as direct_applies_to_input_grad, forward as direct_forward,
    forward_into as direct_forward_into, input_grad as direct_input_grad, weight_grad as direct_weight_grad,
};
#[cfg(target_arch = "x86_64")]
use few_channels::{
    applies as few_channels_applies, applies_to_forward as few_channels_applies_to_forward, forward as few_channels_forward,
    weight_grad as few_channels_weight_grad,
};
#[cfg(target_arch = "x86_64")]
use pointwise::{applies as pointwise_applies, forward as pointwise_forward, forward_into as pointwise_forward_into};
#[cfg(target_arch = "x86_64")]
use few_channels_dx::{applies as few_channels_dx_applies, input_grad as few_channels_input_grad};
#[cfg(not(target_arch = "x86_64"))]
use unsupported::*;
#[cfg(not(target_arch = "x86_64"))]
mod unsupported {
    use crate::error::Result;
    use crate::params::conv::Geometry;
    pub(super) fn direct_applies(_: &Geometry) -> bool {
        false
    }
    pub(super) fn few_channels_applies(_: &Geometry) -> bool {
        false
    }
    pub(super) fn few_channels_applies_to_forward(_: &Geometry) -> bool {
        false
    }
    pub(super) fn few_channels_forward(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: super::SliceEpilogue, _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
    pub(super) fn few_channels_weight_grad(_: &Geometry, _: &[f32], _: &[f32], _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
    pub(super) fn few_channels_dx_applies(_: &Geometry) -> bool {
        false
    }
    pub(super) fn pointwise_applies(_: &Geometry) -> bool {
        false
    }
    pub(super) fn pointwise_forward(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: super::SliceEpilogue, _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the pointwise kernel exists only on x86-64")
    }
    pub(super) unsafe fn pointwise_forward_into(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: super::SliceEpilogue, _: super::Slot, _: &str) -> Result<()> {
        unreachable!("conv: the pointwise kernel exists only on x86-64")
    }
    pub(super) unsafe fn direct_forward_into(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: super::SliceEpilogue, _: super::Slot, _: &str) -> Result<()> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
    pub(super) fn few_channels_input_grad(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
    pub(super) fn direct_applies_to_input_grad(_: &Geometry) -> bool {
        false
    }
    pub(super) fn direct_forward(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: super::SliceEpilogue, _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
    pub(super) fn direct_input_grad(_: &Geometry, _: &[f32], _: &[f32], _: Option<&[f32]>, _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
    pub(super) fn direct_weight_grad(_: &Geometry, _: &[f32], _: &[f32], _: &str) -> Result<Vec<f32>> {
        unreachable!("conv: the direct kernels exist only on x86-64")
    }
}
