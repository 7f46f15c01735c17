//! A convolution's epilogue: the fused activation (params::conv::Activation) applied to a band
//! of output rows right after the band's GEMM wrote it, while it is still in cache, instead of a
//! separate pass that reads and writes the whole output again. One function, called at the end
//! of each output band by engine.rs (im2col + GEMM), and over the whole output after depthwise.rs and
//! direct.rs (mod.rs), whose kernels write in other orders.

use crate::device::cpu::unary;
use crate::params::conv::Activation;

/// Applies `activation` to `channels` runs of `len` floats, `plane` apart, starting at `band`:
/// output rows of a band in every channel plane of one image ([channels, rows · out_width]).
///
/// SAFETY: those floats must be valid for writes and written by no one else during the call.
pub(crate) unsafe fn apply_to_band(activation: Option<Activation>, band: *mut f32, channels: usize, plane: usize, len: usize) {
    let Some(a) = activation else { return };
    for c in 0..channels {
        unary::apply_in_place(a.op, std::slice::from_raw_parts_mut(band.add(c * plane), len), a.alpha);
    }
}
