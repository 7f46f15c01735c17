//! The input gradient of convolutions with 1 to 7 input channels (few_channels.rs serves their
//! forward and weight gradient), unit stride, one group, unit row dilation, kernels 1, 3, 5 or 7
//! rows high, on AVX-512: dx[c] = Σ_o correlate(dy[o], w[o, c]) read backwards, every input
//! channel a sum over all output channels (bench conv2d-a: 32 planes of 28x28 into one).
//!
//! im2col + GEMM did it as a GEMM of depth out_channels into a [c·kh·kw, positions] matrix (9 x
//! 784 per conv2d-a image) that col2im then added back into the planes: each dx value written
//! kh·kw times and read back. Here a tile of R dx rows x 32 columns (2R accumulators) stays in
//! registers while every output channel's dy streams past once per kernel column: dy row
//! `ih + pad - ki` feeds dx row ih through tap ki, so each loaded dy vector serves up to kh dx
//! rows (a 3x3 tile of 8 rows: 20 loads and 3 broadcasts per 48 FMAs).
//!
//! No padded copy of dy: it is read in place, columns that a tap shifts outside the plane masked
//! off with lane masks computed once per call for each (column strip, kernel column), and dy rows
//! outside the plane skipped. (A first direct kernel computed its masks per load and measured no
//! faster than the GEMM.) Lanes past the row's end are read but never stored.

use super::engine::run_units;
use super::few_channels;
use crate::alloc::try_written;
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::parallel::SendPtr;
use std::arch::x86_64::*;

/// dx columns of a tile: two vectors.
const STRIP: usize = 32;

/// Whether this kernel serves the input gradient of `g`: few_channels.rs's convolutions with
/// unit row dilation (a dy row then feeds kh consecutive dx rows) and 1, 3, 5 or 7 kernel rows.
pub(crate) fn applies(g: &Geometry) -> bool {
    few_channels::applies(g) && g.dilation[0] == 1 && matches!(g.kernel[0], 1 | 3 | 5 | 7)
}

/// Lanes l of a vector with 0 <= start + l < len.
fn lanes_inside(start: isize, len: usize) -> __mmask16 {
    let lo = (-start).clamp(0, 16) as u32;
    let hi = (len as isize - start).clamp(0, 16) as u32;
    if hi <= lo {
        0
    } else {
        (((1u64 << hi) - 1) & !((1u64 << lo) - 1)) as __mmask16
    }
}

/// What every tile of a call shares: dy of one image, the filters, and the column geometry.
struct Tiles<'a> {
    dy: *const f32,
    weight: &'a [f32],
    channels: usize,
    out_channels: usize,
    out_height: isize,
    out_width: usize,
    kw: usize,
    /// Per (strip, kernel column): the dy column of the strip's first lane, and each vector's
    /// load mask.
    columns: &'a [(isize, [__mmask16; 2])],
}

/// Gradient [batch, channels, height, width] of the input from `grad_out`, plus `init` per input
/// channel (a conv-transpose's bias). Needs `applies(geo)`.
pub(crate) fn input_grad(geo: &Geometry, grad_out: &[f32], weight: &[f32], init: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let g = *geo;
    let (h, w, plane) = (g.height, g.width, g.height * g.width);
    let strips = w.div_ceil(STRIP);
    let mut columns = Vec::with_capacity(strips * g.kernel[1]);
    for strip in 0..strips {
        for kj in 0..g.kernel[1] {
            let col = (strip * STRIP + g.pad[1]) as isize - (kj * g.dilation[1]) as isize;
            columns.push((col, [lanes_inside(col, g.out_width), lanes_inside(col + 16, g.out_width)]));
        }
    }
    let (band_h, bands) = few_channels::bands(g.batch, h, h);
    // SAFETY: every element is written: each unit stores every lane of its rows that lies inside
    // the plane, for every channel.
    unsafe {
        try_written(op, g.batch * g.image_len(), |dx: *mut f32| {
            let dst = SendPtr(dx);
            run_units(op, g.macs(), g.batch * bands, 0, |unit, _, _| {
                let (n, band) = (unit / bands, unit % bands);
                let rows = band * band_h..((band + 1) * band_h).min(h);
                let tiles = Tiles {
                    dy: grad_out[n * g.out_image_len()..].as_ptr(),
                    weight,
                    channels: g.channels,
                    out_channels: g.out_channels,
                    out_height: g.out_height as isize,
                    out_width: g.out_width,
                    kw: g.kernel[1],
                    columns: &columns,
                };
                for c in 0..g.channels {
                    let start = init.map_or(0.0, |i| i[c]);
                    for strip in 0..strips {
                        let iw0 = strip * STRIP;
                        let store = [lanes_inside(iw0 as isize, w), lanes_inside(iw0 as isize + 16, w)];
                        let mut ih0 = rows.start;
                        while ih0 < rows.end {
                            let r = match rows.end - ih0 {
                                8.. => 8,
                                4..=7 => 4,
                                2..=3 => 2,
                                _ => 1,
                            };
                            // dy row of the tile's first loaded vector (its row y = 0).
                            let y0 = (ih0 + g.pad[0]) as isize - (g.kernel[0] - 1) as isize;
                            // SAFETY: this unit alone writes rows `rows` of image n's planes.
                            let out = dst.ptr().add((n * g.channels + c) * plane + ih0 * w + iw0);
                            let t = (&tiles, c, strip, y0, start, out, w, store);
                            match (g.kernel[0], r) {
                                (1, 8) => tile::<1, 8>(t),
                                (1, 4) => tile::<1, 4>(t),
                                (1, 2) => tile::<1, 2>(t),
                                (1, _) => tile::<1, 1>(t),
                                (3, 8) => tile::<3, 8>(t),
                                (3, 4) => tile::<3, 4>(t),
                                (3, 2) => tile::<3, 2>(t),
                                (3, _) => tile::<3, 1>(t),
                                (5, 8) => tile::<5, 8>(t),
                                (5, 4) => tile::<5, 4>(t),
                                (5, 2) => tile::<5, 2>(t),
                                (5, _) => tile::<5, 1>(t),
                                (7, 8) => tile::<7, 8>(t),
                                (7, 4) => tile::<7, 4>(t),
                                (7, 2) => tile::<7, 2>(t),
                                _ => tile::<7, 1>(t),
                            }
                            ih0 += r;
                        }
                    }
                }
            })?;
            Ok(())
        })
    }
}

/// The arguments of one tile: the call's `Tiles`, input channel c, column strip, the dy row of
/// loaded row 0, the initial value, where dx row 0 of the tile goes, dx's row length, and the
/// store masks of its two vectors.
type TileArgs<'a> = (&'a Tiles<'a>, usize, usize, isize, f32, *mut f32, usize, [__mmask16; 2]);

/// dx rows 0..R of the tile (32 columns) = start + Σ_o Σ_{ki, kj} w[o, c, ki, kj] · dy[o, y0 + r
/// + KH - 1 - ki, column of kj]: loaded dy row y feeds dx row r = y + ki - (KH - 1) through tap ki.
///
/// SAFETY: needs AVX-512F; every load is masked to lanes inside dy's rows 0..out_height of each
/// output channel, every store to lanes inside dx's row; `out` must be valid for R rows of
/// `width` floats (the stored lanes).
#[target_feature(enable = "avx512f")]
unsafe fn tile<const KH: usize, const R: usize>((t, c, strip, y0, start, out, width, store): TileArgs<'_>) {
    let mut acc = [[_mm512_set1_ps(start); 2]; R];
    let out_plane = t.out_height as usize * t.out_width;
    let columns = &t.columns[strip * t.kw..(strip + 1) * t.kw];
    for o in 0..t.out_channels {
        let dy = t.dy.add(o * out_plane);
        let w = t.weight.as_ptr().add((o * t.channels + c) * KH * t.kw);
        for (kj, &(col, [m0, m1])) in columns.iter().enumerate() {
            let mut wk = [_mm512_setzero_ps(); KH];
            for (ki, wk) in wk.iter_mut().enumerate() {
                *wk = _mm512_set1_ps(*w.add(ki * t.kw + kj));
            }
            for y in 0..R + KH - 1 {
                let row = y0 + y as isize;
                if row < 0 || row >= t.out_height {
                    continue;
                }
                // Masked-off lanes are not read, so the address may lie outside the row.
                let p = dy.wrapping_offset(row * t.out_width as isize + col);
                let x0 = _mm512_maskz_loadu_ps(m0, p);
                let x1 = _mm512_maskz_loadu_ps(m1, p.wrapping_add(16));
                for (ki, &wk) in wk.iter().enumerate() {
                    if y + ki >= KH - 1 && y + ki - (KH - 1) < R {
                        let r = y + ki - (KH - 1);
                        acc[r][0] = _mm512_fmadd_ps(wk, x0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(wk, x1, acc[r][1]);
                    }
                }
            }
        }
    }
    for (r, [a0, a1]) in acc.iter().enumerate() {
        let p = out.add(r * width);
        _mm512_mask_storeu_ps(p, store[0], *a0);
        _mm512_mask_storeu_ps(p.wrapping_add(16), store[1], *a1);
    }
}
