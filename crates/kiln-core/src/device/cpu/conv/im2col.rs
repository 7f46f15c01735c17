//! im2col and its adjoint col2im for one image (NCHW) and a band of output rows.
//!
//! The matrix has one row per (channel, ki, kj) in that order, so each group's rows are
//! contiguous, and one column per output position of the band: column `t·out_width + ow` holds
//! the input value output (oh0 + t, ow) multiplies with that kernel tap. With unit stride each
//! (row, output row) is one contiguous copy of an input row with zero borders, which is why the
//! copy costs little next to the GEMM that follows.

use crate::params::conv::Geometry;
use std::ops::Range;

/// Output columns `lo..hi` whose input column `ow·stride + kj·dilation - pad_left` is inside the
/// image, and the input column of `lo`.
fn valid_columns(g: &Geometry, kj: usize) -> (usize, usize, usize) {
    let (sw, dw, pl, w) = (g.stride[1], g.dilation[1], g.pad[1], g.width);
    let tap = kj * dw;
    let lo = if pl > tap { (pl - tap).div_ceil(sw) } else { 0 };
    let hi = if w + pl > tap { ((w + pl - tap - 1) / sw + 1).min(g.out_width) } else { 0 };
    let lo = lo.min(hi);
    (lo, hi, (lo * sw + tap).saturating_sub(pl))
}

/// The input row that output row `oh` reads through kernel row `ki`, if inside the image.
fn input_row(g: &Geometry, oh: usize, ki: usize) -> Option<usize> {
    let ih = (oh * g.stride[0] + ki * g.dilation[0]).checked_sub(g.pad[0])?;
    (ih < g.height).then_some(ih)
}

/// Calls `f(matrix row, kernel row, kernel col, channel)` in the matrix's row order.
fn for_each_tap(g: &Geometry, mut f: impl FnMut(usize, usize, usize, usize)) {
    let [kh, kw] = g.kernel;
    for c in 0..g.channels {
        for ki in 0..kh {
            for kj in 0..kw {
                f((c * kh + ki) * kw + kj, ki, kj, c);
            }
        }
    }
}

/// Fills `col` ([channels·kh·kw, rows.len()·out_width]) from `image` ([channels, height, width]).
pub fn im2col(g: &Geometry, image: &[f32], rows: Range<usize>, col: &mut [f32]) {
    let (ow, plane, sw) = (g.out_width, g.height * g.width, g.stride[1]);
    let cols = rows.len() * ow;
    for_each_tap(g, |r, ki, kj, c| {
        let (lo, hi, start) = valid_columns(g, kj);
        let channel = &image[c * plane..(c + 1) * plane];
        let dst = &mut col[r * cols..(r + 1) * cols];
        for (t, oh) in rows.clone().enumerate() {
            let out = &mut dst[t * ow..(t + 1) * ow];
            let Some(ih) = input_row(g, oh, ki) else {
                out.fill(0.0);
                continue;
            };
            let src = &channel[ih * g.width..(ih + 1) * g.width];
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            if lo == hi {
                continue;
            }
            if sw == 1 {
                out[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
            } else {
                for (v, s) in out[lo..hi].iter_mut().zip(src[start..].iter().step_by(sw)) {
                    *v = *s;
                }
            }
        }
    });
}

/// The adjoint of im2col: adds every entry of `col` into the image position it was read from.
pub fn col2im_add(g: &Geometry, col: &[f32], rows: Range<usize>, image: &mut [f32]) {
    let (ow, plane, sw) = (g.out_width, g.height * g.width, g.stride[1]);
    let cols = rows.len() * ow;
    for_each_tap(g, |r, ki, kj, c| {
        let (lo, hi, start) = valid_columns(g, kj);
        let src_row = &col[r * cols..(r + 1) * cols];
        let channel = &mut image[c * plane..(c + 1) * plane];
        for (t, oh) in rows.clone().enumerate() {
            let Some(ih) = input_row(g, oh, ki) else { continue };
            if lo == hi {
                continue;
            }
            let src = &src_row[t * ow + lo..t * ow + hi];
            let dst = &mut channel[ih * g.width..(ih + 1) * g.width];
            if sw == 1 {
                for (d, s) in dst[start..start + hi - lo].iter_mut().zip(src) {
                    *d += *s;
                }
            } else {
                for (d, s) in dst[start..].iter_mut().step_by(sw).zip(src) {
                    *d += *s;
                }
            }
        }
    });
}
