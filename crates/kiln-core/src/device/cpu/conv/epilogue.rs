//! A convolution's epilogue (params::conv::Epilogue on the CPU): the residual added, then the
//! fused activation applied, to a block of output right after the kernel wrote it, while it is
//! still in cache, instead of separate passes that read and write the whole output again
//! (ResNet's `relu(conv(x) + identity)`: two passes over every block's output otherwise). Called
//! at the end of each output band by engine.rs (im2col + GEMM), on each copied run of a tile by
//! direct.rs, and over the whole output after the kernels that write in other orders (mod.rs).

use crate::device::cpu::unary;
use crate::multiversion;
use crate::params::conv::Activation;

/// The epilogue with the residual as a slice in the output's layout ([N, O, OH, OW]).
#[derive(Clone, Copy, Default)]
pub(crate) struct SliceEpilogue<'a> {
    pub residual: Option<&'a [f32]>,
    pub activation: Option<Activation>,
}

impl SliceEpilogue<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.residual.is_none() && self.activation.is_none()
    }

    /// Runs the epilogue on `channels` runs of `len` floats, `plane` apart, the first starting at
    /// element `offset` of the output at `out` (output rows of a band in every channel plane of
    /// one image); the residual is read at the same elements.
    ///
    /// SAFETY: those floats must be valid for writes and written by no one else during the call.
    pub(crate) unsafe fn apply(&self, out: *mut f32, offset: usize, channels: usize, plane: usize, len: usize) {
        if self.is_empty() {
            return;
        }
        for c in 0..channels {
            let start = offset + c * plane;
            let run = std::slice::from_raw_parts_mut(out.add(start), len);
            if let Some(residual) = self.residual {
                add_in_place(run, &residual[start..start + len]);
            }
            if let Some(a) = self.activation {
                unary::apply_in_place(a.op, run, a.alpha);
            }
        }
    }
}

multiversion! {
    fn add_in_place(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += *s;
        }
    }
}
