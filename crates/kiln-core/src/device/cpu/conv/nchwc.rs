//! Convolutions in the channel-blocked layout NCHWc (c = BLOCK = 16, one AVX-512 vector of
//! channels), the layout onnxruntime's MLAS convolutions run in: an activation [N, C, H, W] is
//! stored as [N, ceil(C/16), H, W, 16], so every pixel's 16 channels of one block are one vector
//! and a convolution's inner step is "broadcast one input value, multiply-add a vector of 16
//! filters" into a register tile of output pixels x output-channel blocks, with full vectors on
//! every image size (NCHW kernels waste lanes on 7x7 and 14x14 planes). Channels past C in the
//! last block are padding: filters are zero there, so their values never reach a result.
//!
//! This file fixes the layout and the functions' contracts; the kernels behind them are the
//! issue-15 work (a reference implementation first, then AVX-512 micro-kernels).
//!
//! Layouts (all float32, row-major, BLOCK = 16):
//! - activations: [N, blocks(C), H, W, BLOCK];
//! - packed filters: [blocks(O), blocks(C), KH, KW, BLOCK (input channel), BLOCK (output channel)],
//!   zero where o >= O or c >= C (one group only);
//! - bias: [blocks(O)·BLOCK], zero past O.

use super::epilogue::SliceEpilogue;
use crate::params::conv::Geometry;

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

/// The forward convolution `geo` (groups == 1) in NCHWc: x [N, blocks(C), H, W, 16], packed
/// filters `w`, `bias` [blocks(O)·16] or none -> y [N, blocks(O), OH, OW, 16], every float of y
/// written (padded channels included), then the epilogue: `epilogue.residual` (y's layout and
/// length) added, `epilogue.activation` applied.
///
/// Reference implementation: plain loops, one (image, output block) per chunk of work.
pub(crate) fn forward(geo: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32]) {
    debug_assert_eq!(geo.groups, 1);
    let (cb, ob) = (blocks(geo.channels), blocks(geo.out_channels));
    let (kh, kw) = (geo.kernel[0], geo.kernel[1]);
    let in_plane = geo.height * geo.width;
    let out_plane = geo.out_plane();
    debug_assert_eq!(x.len(), blocked_len(geo.batch, geo.channels, in_plane));
    debug_assert_eq!(w.len(), packed_filters_len(geo));
    debug_assert_eq!(y.len(), blocked_len(geo.batch, geo.out_channels, out_plane));
    let out_block = out_plane * BLOCK;
    let y_base = crate::parallel::SendView(y.as_mut_ptr());
    crate::parallel::for_each_chunk(geo.batch * ob, geo.batch * ob, |start, end| {
        for unit in start..end {
            let (n, o) = (unit / ob, unit % ob);
            // SAFETY: each unit writes its own (image, output block) range of y.
            let out = unsafe { std::slice::from_raw_parts_mut(y_base.get().add(unit * out_block), out_block) };
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
                                let pixel = &x[((n * cb + c) * in_plane + ih * geo.width + iw) * BLOCK..][..BLOCK];
                                let taps = &w[(((o * cb + c) * kh + ki) * kw + kj) * BLOCK * BLOCK..][..BLOCK * BLOCK];
                                for (ci, &v) in pixel.iter().enumerate() {
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
            unsafe { epilogue.apply(y_base.get(), unit * out_block, 1, out_block, out_block) };
        }
    });
}

/// NCHW [N, C, plane] -> NCHWc [N, blocks(C), plane, 16], padded channels zero.
pub(crate) fn to_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), batch * channels * plane);
    debug_assert_eq!(y.len(), blocked_len(batch, channels, plane));
    let cb = blocks(channels);
    for n in 0..batch {
        for b in 0..cb {
            let dst = &mut y[(n * cb + b) * plane * BLOCK..][..plane * BLOCK];
            for lane in 0..BLOCK {
                let c = b * BLOCK + lane;
                if c >= channels {
                    (0..plane).for_each(|p| dst[p * BLOCK + lane] = 0.0);
                    continue;
                }
                let src = &x[(n * channels + c) * plane..][..plane];
                src.iter().enumerate().for_each(|(p, &v)| dst[p * BLOCK + lane] = v);
            }
        }
    }
}

/// NCHWc [N, blocks(C), plane, 16] -> NCHW [N, C, plane] (padded channels dropped).
pub(crate) fn from_blocked(x: &[f32], batch: usize, channels: usize, plane: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), blocked_len(batch, channels, plane));
    debug_assert_eq!(y.len(), batch * channels * plane);
    let cb = blocks(channels);
    for n in 0..batch {
        for c in 0..channels {
            let src = &x[(n * cb + c / BLOCK) * plane * BLOCK..][..plane * BLOCK];
            let dst = &mut y[(n * channels + c) * plane..][..plane];
            dst.iter_mut().enumerate().for_each(|(p, d)| *d = src[p * BLOCK + c % BLOCK]);
        }
    }
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
mod tests {
    use super::*;

    /// conv2d in NCHW by its definition, for the blocked functions to agree with.
    fn conv_nchw(g: &Geometry, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.batch * g.out_image_len()];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let mut s = bias[o];
                        for c in 0..g.channels {
                            for ki in 0..g.kernel[0] {
                                for kj in 0..g.kernel[1] {
                                    let ih = (oh * g.stride[0] + ki * g.dilation[0]) as isize - g.pad[0] as isize;
                                    let iw = (ow * g.stride[1] + kj * g.dilation[1]) as isize - g.pad[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.height as isize || iw >= g.width as isize {
                                        continue;
                                    }
                                    s += x[((n * g.channels + c) * g.height + ih as usize) * g.width + iw as usize] * w[((o * g.channels + c) * g.kernel[0] + ki) * g.kernel[1] + kj];
                                }
                            }
                        }
                        y[((n * g.out_channels + o) * g.out_height + oh) * g.out_width + ow] = s;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn blocked_forward_matches_the_definition() {
        // 20 -> 35 channels (partial blocks both sides), 3x3 stride 2 pad 1 on 9x7.
        let g = Geometry { batch: 2, channels: 20, height: 9, width: 7, out_channels: 35, out_height: 5, out_width: 4, kernel: [3, 3], stride: [2, 2], pad: [1, 1], dilation: [1, 1], groups: 1 };
        let (x, w, bias) = (values(g.batch * g.image_len(), 1), values(g.weight_len(), 2), values(g.out_channels, 3));
        let expected = conv_nchw(&g, &x, &w, &bias);
        let mut xb = vec![0.0; blocked_len(g.batch, g.channels, g.height * g.width)];
        to_blocked(&x, g.batch, g.channels, g.height * g.width, &mut xb);
        let mut wb = vec![0.0; packed_filters_len(&g)];
        pack_filters(&g, &w, &mut wb);
        let mut bb = vec![0.0; blocks(g.out_channels) * BLOCK];
        bb[..g.out_channels].copy_from_slice(&bias);
        let mut yb = vec![f32::NAN; blocked_len(g.batch, g.out_channels, g.out_plane())];
        forward(&g, &xb, &wb, Some(&bb), SliceEpilogue::default(), &mut yb);
        let mut y = vec![0.0; expected.len()];
        from_blocked(&yb, g.batch, g.out_channels, g.out_plane(), &mut y);
        for (i, (a, b)) in y.iter().zip(&expected).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "element {i}: {a} vs {b}");
        }
    }
}
