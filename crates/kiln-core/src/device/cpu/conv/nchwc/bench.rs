//! A door for examples/cnn_convs.rs, which sees only the public API: the blocked forward and the
//! reorders on plain slices, to time the kernels apart from any op. Not part of Kiln's API
//! (hidden from its docs); the op that runs NCHWc convolutions is ops' business.

use crate::params::conv::{Activation, Geometry};

/// Channels of one block.
pub const BLOCK: usize = super::BLOCK;

/// Floats of `batch` images of `channels` x `plane` in NCHWc.
pub fn blocked_len(batch: usize, channels: usize, plane: usize) -> usize {
    super::blocked_len(batch, channels, plane)
}

/// Floats of `geo`'s packed filters.
pub fn packed_filters_len(geo: &Geometry) -> usize {
    super::packed_filters_len(geo)
}

/// super::forward, the epilogue as its two parts, with the filters' Winograd transform
/// `winograd` (from `winograd_filters`) where the caller keeps it.
#[allow(clippy::too_many_arguments)]
pub fn forward(geo: &Geometry, x: &[f32], w: &[f32], winograd: Option<&[f32]>, bias: Option<&[f32]>, residual: Option<&[f32]>, activation: Option<Activation>, y: &mut [f32]) {
    super::forward(geo, x, super::Packed { taps: w, winograd }, bias, super::SliceEpilogue { residual, activation }, y)
}

/// The Winograd transform of packed filters `w` of a 3x3 stride-1 `geo` (super::winograd_filters),
/// whether or not the rule runs Winograd on it; None for other shapes and CPUs.
pub fn winograd_filters(geo: &Geometry, w: &[f32]) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if geo.kernel == [3, 3] && geo.stride == [1, 1] && crate::simd::level() == crate::simd::SimdLevel::Avx512 {
        return super::winograd_filters(geo, w, "nchwc_bench").ok();
    }
    let _ = (geo, w);
    None
}

/// super::forward_plain_input: x plain NCHW (C <= 16), y blocked.
pub fn forward_plain_input(geo: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, activation: Option<Activation>, y: &mut [f32]) {
    super::forward_plain_input(geo, x, w, bias, super::SliceEpilogue { residual: None, activation }, y)
}

/// super::to_blocked.
pub fn to_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    super::to_blocked(x, batch, channels, plane, y)
}

/// super::from_blocked.
pub fn from_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    super::from_blocked(x, batch, channels, plane, y)
}

/// super::pack_filters.
pub fn pack_filters(geo: &Geometry, w: &[f32], packed: &mut [f32]) {
    super::pack_filters(geo, w, packed)
}
