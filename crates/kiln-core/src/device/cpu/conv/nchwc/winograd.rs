//! Winograd F(2x2, 3x3) in NCHWc: 3x3 stride-1 convolutions read and written in the blocked
//! layout, with 16 multiply-adds per 2x2 output tile and (input, output) channel pair instead
//! of 36, the arithmetic of ../winograd.rs (its comment has the formulas and why F(2x2), not
//! F(4x4)) laid out on channel blocks:
//!
//! - V[ξ] = (Bᵀ d B)[ξ] for each point ξ of the 4x4 transformed tile is [Cb, tiles, 16]: an
//!   NCHWc "image" of one row of `tiles` pixels. The input transform reads a tile's 4x4 pixels
//!   of one block (16 vectors of 16 channels) and writes one vector to each of the 16 V[ξ].
//! - U[ξ] = (G g Gᵀ)[ξ] is [Ob, Cb, 16, 16]: packed filters of a 1x1 convolution, computed from
//!   the packed 3x3 filters lane by lane (the transform acts on the taps only) by
//!   `transform_filters`: once per packed tensor when the caller keeps it (ops' blocked.rs keeps
//!   it as a derived form of the packed filters), else on every call.
//! - So the 16 batched GEMMs M[ξ] = V[ξ] · U[ξ] are 16 1x1 NCHWc convolutions, run by
//!   kernel.rs's register tiles (tiles as the pixels of one long row, no packing per call).
//! - The output transform reads a tile's 16 M[ξ] vectors of one output block and writes 2x2
//!   pixels, with the bias, the residual and relu applied in registers (other activations on
//!   the unit's output rows while they are in cache).
//!
//! Units: a band of tile rows of one image, or several whole images when an image has fewer
//! tiles than a band (14x14, 7x7), as ../winograd.rs cuts them, and at batch 1 a group of output
//! blocks of an image of one band (13x13, 14x14: each thread transforms the image's input again,
//! a small share, and takes half the products and output transforms); V and M of a unit live in
//! a worker's scratch (engine::run_units_on_unwritten: not zeroed), in L2 for the small channel counts.
//!
//! AVX-512 only: elsewhere the blocked convolutions run reference.rs's loops, and the ONNX
//! layout pass blocks nothing (it runs on AVX-512 CPUs).

use super::{blocks, kernel, OutBlocks, BLOCK};
use crate::device::cpu::conv::engine::run_units_on_unwritten;
use crate::device::cpu::conv::epilogue::SliceEpilogue;
use crate::device::cpu::gemm_call::Parallelism;
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::params::unary::UnaryOp;
use crate::parallel::{self, SendPtr};
use std::arch::x86_64::*;

/// Points of a transformed tile: 4 x 4.
const XI: usize = 16;
/// Tiles of a unit at most (the 1x1 convolutions' row length).
const BAND_TILES: usize = 128;
/// Floats between the 16 matrices of V (and of M) beyond their size, so that the 16 streams a
/// transform reads or writes do not all map to one L1 set (../winograd.rs's SKEW).
const SKEW: usize = BLOCK;
/// Floats of one 16x16 block of (input lane, output lane) filters.
const TAP_FLOATS: usize = BLOCK * BLOCK;
/// The name errors give.
const OP: &str = "conv2dNchwc (Winograd)";

/// Whether the forward of `g` (channels counted as Cb·16 and Ob·16) runs here: 3x3, stride and
/// dilation 1, one group, padding of at most 2, outputs up to 256 wide, on AVX-512, and the rule
/// below; `KILN_CONV_PATH`
/// (read per call, for measurements and tests) `direct` keeps it on kernel.rs's direct tiles,
/// `winograd` takes Winograd wherever it fits.
pub(super) fn applies(g: &Geometry) -> bool {
    if !fits(g) || crate::simd::level() != crate::simd::SimdLevel::Avx512 {
        return false;
    }
    match std::env::var_os("KILN_CONV_PATH") {
        Some(v) if v == "direct" => false,
        Some(v) if v == "winograd" => true,
        _ => pays(g),
    }
}

/// The shapes this file computes; a tile row must fit a unit (outputs up to 256 wide), so a
/// unit's scratch stays bounded by the channels (wider images stay on the direct tiles).
fn fits(g: &Geometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1 && g.pad[0] <= 2 && g.pad[1] <= 2 && g.out_height > 0 && g.out_width > 0 && g.out_width.div_ceil(2) <= BAND_TILES
}

/// Fewest tiles of a call (batch x tiles per image) for which Winograd pays over the direct
/// tiles, its filters' transform kept with the packed filters (as the ops keep it): 7x7 at batch
/// 1 (16 tiles) is the smallest shape of the models measured. `cnn_convs` NCHWc direct /
/// Winograd columns, GFLOP per CPU-second (wall ms), 2 threads, load 6: ResNet-50's 512->512 at
/// 7x7 batch 1 84-86 (4.0) / 141 (2.1), batch 8 84 / 152; 256->256 at 14x14 batch 1 (49 tiles)
/// 106 / 202. (Made on every call, the transform had kept the rule at 40 tiles: 512->512 at 7x7
/// batch 1 then ran 70 direct / 51 Winograd.)
const MIN_TILES: usize = 16;

/// The measured rule (see MIN_TILES).
fn pays(g: &Geometry) -> bool {
    g.batch * g.out_height.div_ceil(2) * g.out_width.div_ceil(2) >= MIN_TILES
}

/// How the output is cut into tiles and units.
#[derive(Clone, Copy)]
struct Tiles {
    /// Tile rows of an image, tiles per tile row.
    rows: usize,
    cols: usize,
    /// Tile rows per band at most, bands per image (their rows as even as whole rows allow).
    band: usize,
    bands: usize,
    /// Whole images per unit when an image is one band, else 1.
    images: usize,
    /// Output blocks per unit at most, groups of them (units of one image band each).
    group_blocks: usize,
    groups: usize,
}

impl Tiles {
    fn new(g: &Geometry) -> Tiles {
        let (rows, cols, ob) = (g.out_height.div_ceil(2), g.out_width.div_ceil(2), blocks(g.out_channels));
        let threads = parallel::num_threads();
        let mut bands = rows.div_ceil((BAND_TILES / cols).clamp(1, rows));
        let mut groups = 1;
        if (1..threads).contains(&g.batch) {
            // Fewer images than threads (batch 1): every thread gets an even share of the
            // transforms and products. An image of several bands: bands in a multiple of the
            // threads, of rows as even as whole rows allow (55x55's 28 tile rows in 7 bands of 4
            // left one thread 4 bands and the other 3). An image of one band (13x13, 14x14: 49
            // tiles) is cut by output blocks instead: tile rows would cut it 4 + 3.
            let per_image = threads.div_ceil(g.batch);
            if bands == 1 {
                groups = per_image.min(ob);
            } else {
                bands = bands.next_multiple_of(per_image).min(rows);
            }
        }
        let group_blocks = ob.div_ceil(groups);
        let groups = ob.div_ceil(group_blocks);
        // Images of one band each share a unit up to BAND_TILES tiles, leaving a unit per thread.
        let per_thread = g.batch.div_ceil(threads).max(1);
        let images = if bands == 1 && groups == 1 { (BAND_TILES / (rows * cols)).clamp(1, per_thread) } else { 1 };
        Tiles { rows, cols, band: rows.div_ceil(bands), bands, images, group_blocks, groups }
    }

    fn units(&self, batch: usize) -> usize {
        batch.div_ceil(self.images) * self.bands * self.groups
    }

    /// Tiles of a unit at most.
    fn unit_tiles(&self) -> usize {
        self.images * self.band * self.cols
    }

    /// Tile rows of band `band` (of 0..self.bands).
    fn band_rows(&self, band: usize) -> std::ops::Range<usize> {
        self.rows * band / self.bands..self.rows * (band + 1) / self.bands
    }

    /// Output blocks of group `group` (of 0..self.groups), out of `ob`.
    fn group(&self, group: usize, ob: usize) -> std::ops::Range<usize> {
        group * self.group_blocks..((group + 1) * self.group_blocks).min(ob)
    }
}

/// nchwc::forward's contract for `g` (`applies(g)`), with the packed filters `w`'s transform
/// `u` (`transform_filters`) if the caller keeps it; or an error if the scratch (V, M, the
/// filters' transform) cannot be allocated, before anything is written.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32], u: Option<&[f32]>, bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks) -> Result<()> {
    let (cb, ob) = (blocks(g.channels), blocks(g.out_channels));
    let made;
    let u = match u {
        Some(u) => u,
        None => {
            made = transform_filters(g, w, OP)?;
            &made
        }
    };
    assert_eq!(u.len(), XI * ob * cb * TAP_FLOATS, "{OP}: transformed filters of another shape");
    let t = Tiles::new(g);
    let most = t.unit_tiles();
    let (v_stride, m_stride) = (cb * most * BLOCK + SKEW, t.group_blocks * most * BLOCK + SKEW);
    let scratch_len = XI * (v_stride + m_stride);
    let relu = matches!(epilogue.activation, Some(a) if a.op == UnaryOp::Relu);
    let finish = Finish {
        residual: epilogue.residual.map(|r| r.as_ptr()),
        relu,
        after: SliceEpilogue { residual: None, activation: if relu { None } else { epilogue.activation } },
    };
    let out = SendPtr(y.as_mut_ptr());
    let (x, u, bias) = (SendPtr(x.as_ptr() as *mut f32), SendPtr(u.as_ptr() as *mut f32), bias.map(|b| SendPtr(b.as_ptr() as *mut f32)));
    let parallel = crate::device::cpu::conv::engine::parallel_pays_for(g.macs());
    let run_unit = |unit: usize, scratch: &mut [f32], inner: Parallelism| {
        let (group, unit) = (unit % t.groups, unit / t.groups);
        let (first, band) = (unit / t.bands * t.images, unit % t.bands);
        let images = first..(first + t.images).min(g.batch);
        let rows = t.band_rows(band);
        let image_tiles = rows.len() * t.cols;
        let tiles = images.len() * image_tiles;
        let (v, m) = scratch.split_at_mut(XI * v_stride);
        let out_blocks = t.group(group, ob);
        let work = Unit { g, cb, out_blocks: out_blocks.clone(), tiles, image_tiles, rows: rows.clone() };
        for (i, n) in images.clone().enumerate() {
            // SAFETY: AVX-512F (`applies`); x holds the batch (nchwc::run checked the lengths).
            unsafe { work.transform_input(x.ptr().add(n * cb * g.height * g.width * BLOCK), v, v_stride, i * image_tiles) };
        }
        // M[ξ] = V[ξ] · U[ξ]: a 1x1 convolution of Cb·16 into Ob·16 channels over one row of tiles.
        // The unit's output blocks only: U[ξ]'s filters of those blocks are consecutive.
        let gb = out_blocks.len();
        let pointwise = Geometry { batch: 1, channels: cb * BLOCK, height: 1, width: tiles, out_channels: gb * BLOCK, out_height: 1, out_width: tiles, kernel: [1, 1], stride: [1, 1], pad: [0, 0], dilation: [1, 1], groups: 1 };
        let (u_len, serial) = (ob * cb * TAP_FLOATS, matches!(inner, Parallelism::None));
        for xi in 0..XI {
            // SAFETY: U lives for the call (u_len floats per point, out_blocks inside 0..ob); V[ξ]
            // and M[ξ] are this worker's scratch.
            let uxi = unsafe { std::slice::from_raw_parts(u.ptr().add(xi * u_len + out_blocks.start * cb * TAP_FLOATS) as *const f32, gb * cb * TAP_FLOATS) };
            let mxi = &mut m[xi * m_stride..][..gb * tiles * BLOCK];
            kernel::forward_with(&pointwise, &v[xi * v_stride..][..cb * tiles * BLOCK], uxi, None, SliceEpilogue::default(), mxi, OutBlocks { per_image: gb, first: 0 }, None, serial);
        }
        for (i, n) in images.enumerate() {
            // SAFETY: AVX-512F; this unit alone writes the output rows of its tile rows in image
            // n, inside y (nchwc::run checked its length for `into`).
            unsafe { work.transform_output(m, m_stride, i * image_tiles, bias.as_ref().map(|b| b.ptr() as *const f32), finish, out.ptr(), n, into) };
        }
    };
    // SAFETY: a unit writes V (the input transform: every tile of every input block) and M (the
    // products: every tile of its output blocks) before it reads them; the skews are never read.
    unsafe { run_units_on_unwritten(OP, t.units(g.batch), parallel, scratch_len, run_unit)? };
    Ok(())
}

/// What the output transform does after Aᵀ M A: bias (added there), then the residual (at the
/// output's offsets) and relu in registers, then `after` (other activations) on the stored rows.
#[derive(Clone, Copy)]
struct Finish<'a> {
    residual: Option<*const f32>,
    relu: bool,
    after: SliceEpilogue<'a>,
}

// SAFETY: the pointer is read only, from a slice that outlives the call.
unsafe impl Send for Finish<'_> {}
unsafe impl Sync for Finish<'_> {}

/// One unit's tiles: tile rows `rows` of some images, `image_tiles` of V's and M's columns each,
/// for the output blocks `out_blocks` (M holds those blocks only).
struct Unit<'a> {
    g: &'a Geometry,
    cb: usize,
    out_blocks: std::ops::Range<usize>,
    tiles: usize,
    image_tiles: usize,
    rows: std::ops::Range<usize>,
}

impl Unit<'_> {
    /// V[ξ][block][col0 + tile] = (Bᵀ d B)[ξ] of every tile of `self.rows` of the image at `x`
    /// ([Cb, H, W, 16]), pixels outside the image read as zeros.
    ///
    /// SAFETY: AVX-512F; x holds Cb·H·W·16 floats; v holds 16 matrices `v_stride` apart of
    /// Cb·self.tiles·16 floats, col0 + self.image_tiles <= self.tiles.
    #[target_feature(enable = "avx512f")]
    unsafe fn transform_input(&self, x: *const f32, v: &mut [f32], v_stride: usize, col0: usize) {
        let g = self.g;
        let (h, w) = (g.height as isize, g.width as isize);
        let cols = g.out_width.div_ceil(2);
        assert!(v.len() >= XI * v_stride - SKEW && col0 + self.image_tiles <= self.tiles);
        let v = v.as_mut_ptr();
        for c in 0..self.cb {
            let xc = x.add(c * g.height * g.width * BLOCK);
            for (r, ty) in self.rows.clone().enumerate() {
                let iy0 = (2 * ty) as isize - g.pad[0] as isize;
                for tx in 0..cols {
                    let ix0 = (2 * tx) as isize - g.pad[1] as isize;
                    let inside = iy0 >= 0 && ix0 >= 0 && iy0 + 4 <= h && ix0 + 4 <= w;
                    let pixel = |i: usize, j: usize| {
                        let (iy, ix) = (iy0 + i as isize, ix0 + j as isize);
                        if inside || (iy >= 0 && ix >= 0 && iy < h && ix < w) {
                            _mm512_loadu_ps(xc.offset((iy * w + ix) * BLOCK as isize))
                        } else {
                            _mm512_setzero_ps()
                        }
                    };
                    // B along each of the tile's 4 rows, then Bᵀ down each column.
                    let rows_b: [[__m512; 4]; 4] = std::array::from_fn(|i| bt(pixel(i, 0), pixel(i, 1), pixel(i, 2), pixel(i, 3)));
                    let at = (c * self.tiles + col0 + r * cols + tx) * BLOCK;
                    for j in 0..4 {
                        for (i, val) in bt(rows_b[0][j], rows_b[1][j], rows_b[2][j], rows_b[3][j]).into_iter().enumerate() {
                            _mm512_storeu_ps(v.add((i * 4 + j) * v_stride + at), val);
                        }
                    }
                }
            }
        }
    }

    /// y[n, into.first + block, 2·ty + i, 2·tx + j] = (Aᵀ M A)[i][j] + bias, then `finish`, for
    /// the tiles of `self.rows` at M's columns col0.. and the blocks `self.out_blocks`: every
    /// output pixel of those rows and blocks written.
    ///
    /// SAFETY: AVX-512F; m holds 16 matrices `m_stride` apart of out_blocks.len()·self.tiles·16
    /// floats; bias Ob·16 floats; out (and the residual) hold y for `into`; no one else writes
    /// these rows of these blocks.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn transform_output(&self, m: &[f32], m_stride: usize, col0: usize, bias: Option<*const f32>, finish: Finish, out: *mut f32, n: usize, into: OutBlocks) {
        let g = self.g;
        let (oh, ow, plane) = (g.out_height, g.out_width, g.out_height * g.out_width);
        let cols = ow.div_ceil(2);
        assert!(m.len() >= XI * m_stride - SKEW && col0 + self.image_tiles <= self.tiles);
        let m = m.as_ptr();
        let first_row = 2 * self.rows.start;
        let last_row = (2 * self.rows.end).min(oh);
        for (local, o) in self.out_blocks.clone().enumerate() {
            let b = bias.map_or(_mm512_setzero_ps(), |b| _mm512_loadu_ps(b.add(o * BLOCK)));
            let block = (n * into.per_image + into.first + o) * plane * BLOCK;
            for (r, ty) in self.rows.clone().enumerate() {
                for tx in 0..cols {
                    let at = (local * self.tiles + col0 + r * cols + tx) * BLOCK;
                    let p = |xi: usize| _mm512_loadu_ps(m.add(xi * m_stride + at));
                    // Aᵀ down each column j, then A along each of the 2 rows.
                    let s: [[__m512; 2]; 4] = std::array::from_fn(|j| at2(p(j), p(4 + j), p(8 + j), p(12 + j)));
                    for i in 0..2 {
                        let oy = 2 * ty + i;
                        if oy >= oh {
                            break;
                        }
                        for (j, val) in at2(s[0][i], s[1][i], s[2][i], s[3][i]).into_iter().enumerate() {
                            let ox = 2 * tx + j;
                            if ox >= ow {
                                break;
                            }
                            let dst = block + (oy * ow + ox) * BLOCK;
                            let mut val = _mm512_add_ps(val, b);
                            if let Some(res) = finish.residual {
                                val = _mm512_add_ps(val, _mm512_loadu_ps(res.add(dst)));
                            }
                            if finish.relu {
                                // max(0, v): a NaN comes through as the scalar relu lets it (kernel.rs).
                                val = _mm512_max_ps(_mm512_setzero_ps(), val);
                            }
                            _mm512_storeu_ps(out.add(dst), val);
                        }
                    }
                }
            }
            finish.after.apply(out, block + first_row * ow * BLOCK, 1, 0, (last_row - first_row) * ow * BLOCK);
        }
    }
}

/// Bᵀ applied to 4 vectors of a tile column or row.
#[inline(always)]
unsafe fn bt(d0: __m512, d1: __m512, d2: __m512, d3: __m512) -> [__m512; 4] {
    [_mm512_sub_ps(d0, d2), _mm512_add_ps(d1, d2), _mm512_sub_ps(d2, d1), _mm512_sub_ps(d1, d3)]
}

/// Aᵀ applied to 4 vectors of a transformed column or row: the 2 outputs.
#[inline(always)]
unsafe fn at2(m0: __m512, m1: __m512, m2: __m512, m3: __m512) -> [__m512; 2] {
    [_mm512_add_ps(_mm512_add_ps(m0, m1), m2), _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3)]
}

/// U [16][Ob][Cb][16 (c)][16 (o)] from `g`'s packed 3x3 filters [Ob][Cb][3][3][16 (c)][16 (o)]:
/// G g Gᵀ of every (c, o) lane pair, 16 output lanes at a time; blocks of output channels spread
/// over the threads. 16/9 of the packed filters' floats; an error if they cannot be allocated.
pub(super) fn transform_filters(g: &Geometry, w: &[f32], op: &str) -> Result<Vec<f32>> {
    let (cb, ob) = (blocks(g.channels), blocks(g.out_channels));
    let pairs = ob * cb;
    assert_eq!(w.len(), pairs * 9 * TAP_FLOATS, "{op}: packed 3x3 filters expected");
    let u_len = pairs * TAP_FLOATS;
    let mut u = crate::alloc::try_zeroed::<f32>(op, XI * u_len)?;
    let (src, dst) = (SendPtr(w.as_ptr() as *mut f32), SendPtr(u.as_mut_ptr()));
    let chunks = if crate::device::cpu::conv::engine::parallel_pays_for(u_len * XI) { ob } else { 1 };
    parallel::for_each_chunk(ob, chunks, |start, end| {
        // SAFETY: AVX-512F (`applies`); blocks start..end of U written by this chunk alone.
        unsafe { transform_filter_blocks(src.ptr(), dst.ptr(), u_len, start * cb..end * cb) };
    });
    Ok(u)
}

/// transform_filters for the (output block, input block) pairs `pairs`.
///
/// SAFETY: AVX-512F; w and u as transform_filters lays them out, `u_len` floats per point.
#[target_feature(enable = "avx512f")]
unsafe fn transform_filter_blocks(w: *const f32, u: *mut f32, u_len: usize, pairs: std::ops::Range<usize>) {
    let half = _mm512_set1_ps(0.5);
    // G applied to the 3 taps (a, b, c) of a kernel column or row.
    let g4 = |a: __m512, b: __m512, c: __m512| [a, _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), c)), _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), c)), c];
    for pair in pairs {
        for lane in 0..BLOCK {
            let k = |tap: usize| _mm512_loadu_ps(w.add((pair * 9 + tap) * TAP_FLOATS + lane * BLOCK));
            let cols: [[__m512; 4]; 3] = std::array::from_fn(|j| g4(k(j), k(3 + j), k(6 + j)));
            for i in 0..4 {
                for (j, val) in g4(cols[0][i], cols[1][i], cols[2][i]).into_iter().enumerate() {
                    _mm512_storeu_ps(u.add((i * 4 + j) * u_len + pair * TAP_FLOATS + lane * BLOCK), val);
                }
            }
        }
    }
}
