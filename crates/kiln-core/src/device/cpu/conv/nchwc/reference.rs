//! The plain-loop forward in NCHWc: what `forward` runs without AVX-512 (other x86-64 CPUs,
//! wasm32), and the second opinion the kernel's tests compare with. One (image, output block)
//! per unit of work, every tap bounds-checked.

use super::{blocks, Input, OutBlocks, BLOCK};
use crate::device::cpu::conv::epilogue::SliceEpilogue;
use crate::params::conv::Geometry;

/// `super::forward`'s contract, in plain loops, into `into`'s blocks of y.
/// x in `input`'s layout.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(geo: &Geometry, input: Input, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks) {
    debug_assert_eq!(geo.groups, 1);
    let (cb, ob) = (blocks(geo.channels), blocks(geo.out_channels));
    let (kh, kw) = (geo.kernel[0], geo.kernel[1]);
    let in_plane = geo.height * geo.width;
    let out_plane = geo.out_plane();
    let out_block = out_plane * BLOCK;
    // Input channel ci of block c at pixel p of image n.
    let value = |n: usize, c: usize, ci: usize, p: usize| match input {
        Input::Blocked => x[((n * cb + c) * in_plane + p) * BLOCK + ci],
        Input::Plain if c * BLOCK + ci < geo.channels => x[(n * geo.channels + c * BLOCK + ci) * in_plane + p],
        Input::Plain => 0.0,
    };
    let y_base = crate::parallel::SendView(y.as_mut_ptr());
    let units = geo.batch * ob;
    let chunks = if super::super::engine::parallel_pays_for(geo.macs()) { units } else { 1 };
    crate::parallel::for_each_chunk(units, chunks, |start, end| {
        for unit in start..end {
            let (n, o) = (unit / ob, unit % ob);
            let at = (n * into.per_image + into.first + o) * out_block;
            // SAFETY: each unit writes its own (image, output block) range of y.
            let out = unsafe { std::slice::from_raw_parts_mut(y_base.get().add(at), out_block) };
            for oh in 0..geo.out_height {
                for ow in 0..geo.out_width {
                    let acc = &mut out[(oh * geo.out_width + ow) * BLOCK..][..BLOCK];
                    match bias {
                        Some(b) => acc.copy_from_slice(&b[o * BLOCK..][..BLOCK]),
                        None => acc.fill(0.0),
                    }
                    for c in 0..cb {
                        for ki in 0..kh {
                            let Some(ih) = (oh * geo.stride[0] + ki * geo.dilation[0]).checked_sub(geo.pad[0]).filter(|&h| h < geo.height) else { continue };
                            for kj in 0..kw {
                                let Some(iw) = (ow * geo.stride[1] + kj * geo.dilation[1]).checked_sub(geo.pad[1]).filter(|&v| v < geo.width) else { continue };
                                let taps = &w[(((o * cb + c) * kh + ki) * kw + kj) * BLOCK * BLOCK..][..BLOCK * BLOCK];
                                for ci in 0..BLOCK {
                                    let v = value(n, c, ci, ih * geo.width + iw);
                                    for (a, &f) in acc.iter_mut().zip(&taps[ci * BLOCK..][..BLOCK]) {
                                        *a += v * f;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // SAFETY: the unit's own floats, written above and by no one else.
            unsafe { epilogue.apply(y_base.get(), at, 1, out_block, out_block) };
        }
    });
}
