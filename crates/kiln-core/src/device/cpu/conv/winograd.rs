//! Winograd F(2x2, 3x3): the forward pass and the input gradient of 3x3 stride-1 convolutions
//! on wasm32 (SIMD128, 4 lanes) and on x86-64 with AVX-512 (16 lanes).
//!
//! Why: im2col + GEMM runs at the GEMM's speed and direct.rs near the FMA peak (conv2d-b: ~165
//! of ~208 GFLOP per CPU-second), so the way left to a faster 3x3 convolution is fewer
//! multiplies. F(2x2, 3x3) computes each 2x2 output tile from a 4x4 input tile with 16
//! multiply-adds per (input, output) channel pair instead of 36 (Lavin & Gray, "Fast Algorithms
//! for Convolutional Neural Networks", 2015):
//!
//!   Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
//!
//! The sum over channels is 16 GEMMs, one per point ξ of the 4x4 transformed tile:
//! M[ξ] (out_channels x tiles) = U[ξ] (out_channels x channels) · V[ξ] (channels x tiles). The
//! transforms' coefficients are 0, ±1 and ±1/2 (exact in binary), so the rounding error stays
//! that of a direct convolution's order (the tests check it against a float64 reference).
//! F(4x4, 3x3) would cut the multiplies to 4/9 of F(2x2)'s but its transforms amplify rounding
//! by about 10x; not taken.
//!
//! The input gradient of a 3x3 stride-1 convolution is the forward of dy with each filter
//! flipped and input/output channels swapped, padding 2 - pad (`input_grad`), so it runs here
//! too.
//!
//! Layout: a unit of work is a band of tile rows of one image, or, when a whole image is fewer
//! tiles than a band holds (14x14 and 7x7: 49 and 16 tiles), several whole images. Its V (16 x
//! channels x tiles) and M (16 x out_channels x tiles) are built in a worker's scratch, each
//! 0.5-1 MiB at most (BAND_TILES), so they stay in L2 between the transforms and the GEMMs; the
//! GEMMs' n is the unit's tiles, images after one another. The transforms work on WIDTH (4 or
//! 16) horizontally adjacent tiles at once, one per SIMD lane: the columns of tiles that start 2
//! apart are the even and odd lanes of two vector loads. A tile row's last vector may hold tiles
//! past its end (7 tiles of 16 lanes on a 14x14 image): those lanes read zeros, are not stored
//! into V, and their outputs are not written, so the GEMMs multiply real tiles only (a first
//! version kept the padding tiles in V: on x86-64 it left rows that wasted more than an eighth
//! of the lanes to direct.rs).
//!
//! Not the weight gradient: that is a different shape of problem (a 3x3 result).

use super::lanes::Lanes;
use super::Slot;
#[cfg(target_arch = "x86_64")]
use super::lanes::F16 as Lane;
#[cfg(not(target_arch = "x86_64"))]
use super::lanes::F4 as Lane;
use crate::device::cpu::gemm_call::{gemm, Parallelism};
use super::engine::parallel_pays;
use crate::error::{KilnError, Result};
use crate::params::conv::Geometry;
use crate::parallel::{self, RegionLock, SendPtr};
use crate::storage::{try_zeroed, Scratch};
use crate::alloc::try_written;

/// Points of a transformed tile: 4 x 4.
const XI: usize = 16;
/// Tiles per unit of work at most (the GEMMs' n): on AVX-512, V for 64 channels is then 16 x 64
/// x 128 floats = 512 KiB, and M as much, so both stay in a 2 MiB L2 beside the GEMM's packing;
/// 256 (WASM's value, 1 MiB each) measured the same or a little slower there (conv2d-b, three
/// alternating pairs of conv_passes, loaded machine: forward 151-216 GFLOP per CPU-second
/// against 160-205), and conv2d-b's batch of 8 then makes 16 units for the threads, not 8.
const BAND_TILES: usize = if cfg!(target_arch = "wasm32") { 256 } else { 128 };
/// Floats between the 16 matrices of V (and of M) beyond their size: with 64 channels and 256
/// tiles each matrix is 64 KiB, so without a skew the 16 streams a transform reads or writes
/// (one per point ξ) all map to the same L1 cache set and evict each other (L1 is 12-way).
/// One cache line of skew puts them in 16 different sets.
const SKEW: usize = 16;
/// Below this many input channels the GEMMs' inner dimension is too short to pay for the
/// transforms (a 1-channel image, conv2d-a, stays on im2col + GEMM).
const MIN_CHANNELS: usize = 8;
/// Fewest output tiles of a call (batch x tiles per image) for which AVX-512 runs it here, not on
/// direct.rs: the filters' transform (16 values per filter pair, every call) is a GEMM's worth
/// of work per tile, so it takes some tiles to pay for. `cnn_convs --against=direct`, GFLOP per
/// CPU-second, loaded machine, two runs: batch 8 256->256 at 14x14 (392 tiles) 221-234 against
/// 147-149, 64->256 at 13x13 165-174 against 86-123, 512->512 at 7x7 (128) 157 against 144-149
/// (and no faster inside ResNet-50: 38.8, 28.6 -> 39.1, 35.1 ms of CPU, bench/onnx-op-profile.mjs,
/// two pairs); batch 1 256->256 at 14x14 (49) 102-104 against 122-135, 512->512 at 7x7 (16)
/// 39-40 against 123-132, 128->128 at 28x28 (196) 148-169 against 132-161.
#[cfg(target_arch = "x86_64")]
const MIN_TILES: usize = 192;
/// Lanes of the transforms in this build.
const WIDTH: usize = Lane::WIDTH;

/// Whether the forward pass of `g` runs here: 3x3 kernels, stride and dilation 1, one group,
/// enough channels, padding of at most 2 (a wider border reads only zeros); on wasm32 always, on
/// x86-64 with AVX-512 when the batch has at least MIN_TILES tiles, unless `KILN_CONV_PATH`
/// names another path (`direct`, `im2col`: read per call, so a bench or a test compares them in
/// one process).
pub(crate) fn applies(g: &Geometry) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let tiles = g.batch * g.out_height.div_ceil(2) * g.out_width.div_ceil(2);
        runs_here(g) && tiles >= MIN_TILES && std::env::var_os("KILN_CONV_PATH").is_none_or(|v| v != "im2col" && v != "direct")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "wasm32") && runs_here(g)
    }
}

/// Whether this build and CPU can run `g` here at all (the tests run every shape that does).
fn runs_here(g: &Geometry) -> bool {
    fits(g) && (cfg!(not(target_arch = "x86_64")) || crate::simd::level() == crate::simd::SimdLevel::Avx512)
}

/// Whether `input_grad` serves `g`: `applies` to the flipped forward.
pub(crate) fn applies_to_input_grad(g: &Geometry) -> bool {
    fits(g) && g.input_grad_as_forward().is_some_and(|f| applies(&f))
}

fn fits(g: &Geometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1 && g.channels >= MIN_CHANNELS && g.pad[0] <= 2 && g.pad[1] <= 2 && g.out_height > 0 && g.out_width > 0
}

/// How the output is cut into tiles and bands of tile rows.
#[derive(Clone, Copy)]
struct Tiles {
    /// Tile rows of an image.
    rows: usize,
    /// Tiles per tile row, rounded up to a multiple of WIDTH (the lanes).
    per_row: usize,
    /// Tiles per tile row: the columns of V and M a tile row takes.
    real: usize,
    /// Tile rows per band.
    band: usize,
    /// Bands per image.
    bands: usize,
    /// Whole images per unit when an image is one band, else 1.
    images: usize,
    /// Width of the zero-padded input rows a band is copied into: 2 columns per tile + 2.
    padded_width: usize,
}

impl Tiles {
    fn new(g: &Geometry) -> Tiles {
        let rows = g.out_height.div_ceil(2);
        let real = g.out_width.div_ceil(2);
        let per_row = real.next_multiple_of(WIDTH);
        let band = (BAND_TILES / real.max(1)).clamp(1, rows.max(1));
        let bands = rows.div_ceil(band);
        // Images of one band each share a unit up to BAND_TILES tiles, leaving a unit per thread.
        let per_thread = g.batch.div_ceil(parallel::num_threads()).max(1);
        let images = if bands == 1 { (BAND_TILES / (rows * real).max(1)).clamp(1, per_thread) } else { 1 };
        Tiles { rows, per_row, real, band, bands, images, padded_width: 2 * per_row + 2 }
    }

    /// Floats of one worker's scratch: V, M, and for one channel the padded input rows and those
    /// rows with B applied (4 floats per tile each).
    fn scratch_len(&self, g: &Geometry) -> usize {
        let tiles = self.images * self.band * self.real;
        XI * (g.channels * tiles + SKEW + g.out_channels * tiles + SKEW) + (2 * self.band + 2) * (self.padded_width + 4 * self.per_row)
    }
}

/// U = G g Gᵀ for every (output, input) channel pair, laid out [16][out_channels][channels]: the
/// 16 GEMMs' left operands.
fn transform_filters(g: &Geometry, w: &[f32], op: &str) -> Result<Vec<f32>> {
    let (outs, ins) = (g.out_channels, g.channels);
    let mut u = try_zeroed::<f32>(op, XI * outs * ins)?;
    // G applied to the 3 values (a, b, c) of a kernel column or row.
    let g4 = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for o in 0..outs {
        for c in 0..ins {
            let k = &w[(o * ins + c) * 9..][..9];
            let cols: [[f32; 4]; 3] = std::array::from_fn(|j| g4(k[j], k[3 + j], k[6 + j]));
            for i in 0..4 {
                for (j, v) in g4(cols[0][i], cols[1][i], cols[2][i]).into_iter().enumerate() {
                    u[((i * 4 + j) * outs + o) * ins + c] = v;
                }
            }
        }
    }
    Ok(u)
}

/// Bᵀ applied to 4 values of a tile column or row.
#[inline(always)]
fn bt(d0: Lane, d1: Lane, d2: Lane, d3: Lane) -> [Lane; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// Aᵀ applied to 4 values of a transformed column or row: the 2 outputs.
#[inline(always)]
fn at(m0: Lane, m1: Lane, m2: Lane, m3: Lane) -> [Lane; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// Columns `col0..col0 + rows.len() · real` of V (16 x channels x `cols`; matrix ξ at
/// ξ · (channels · cols + SKEW)): the tiles of tile rows `rows` of `image`, row after row.
///
/// In two passes per channel, each with few vectors live (V8 spills beyond 15): B along every
/// padded input row once (`rows_b`: each row serves two tile rows), then Bᵀ down each tile's 4
/// rows of that. Measured: one pass holding a whole 4x4 tile of 4 lanes took 31% of the
/// convolution's time, in a CPU profile of conv2d-b.
///
/// SAFETY: on x86-64 the CPU must have AVX-512F (`runs_here`).
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_input(g: &Geometry, t: &Tiles, image: &[f32], rows: std::ops::Range<usize>, padded: &mut [f32], rows_b: &mut [f32], v: &mut [f32], cols: usize, col0: usize) {
    let (pw, plane) = (t.padded_width, g.height * g.width);
    let in_rows = 2 * rows.len() + 2;
    let groups = t.per_row / WIDTH;
    assert!(padded.len() >= in_rows * pw && rows_b.len() >= in_rows * t.per_row * 4 && v.len() >= XI * (g.channels * cols + SKEW) && col0 + rows.len() * t.real <= cols);
    let xi_stride = g.channels * cols + SKEW;
    for c in 0..g.channels {
        // The input rows these tiles read, zero-padded: padded column q is input column q - pad_left.
        let channel = &image[c * plane..(c + 1) * plane];
        for (r, dst) in padded[..in_rows * pw].chunks_exact_mut(pw).enumerate() {
            dst.fill(0.0);
            let Some(iy) = (2 * rows.start + r).checked_sub(g.pad[0]).filter(|&iy| iy < g.height) else { continue };
            let src = &channel[iy * g.width..(iy + 1) * g.width];
            // Input columns 0..width land at pad_left.., clipped to the padded row.
            let n = g.width.min(pw - g.pad[1]);
            dst[g.pad[1]..g.pad[1] + n].copy_from_slice(&src[..n]);
        }
        // SAFETY (both passes): the asserts above bound every index; the loads of padded row y at
        // 2·WIDTH·group + 0..2·WIDTH+2 stay inside its pw = 2·WIDTH·groups + 2 floats.
        unsafe {
            // rows_b[y][group][j]: column j of the WIDTH tiles of `group`, B applied along row y.
            for y in 0..in_rows {
                let src = padded.as_ptr().add(y * pw);
                let dst = rows_b.as_mut_ptr().add(y * t.per_row * 4);
                for grp in 0..groups {
                    let p = src.add(2 * WIDTH * grp);
                    let (a, b, c2, d2) = (Lane::load(p), Lane::load(p.add(WIDTH)), Lane::load(p.add(2)), Lane::load(p.add(WIDTH + 2)));
                    for (j, e) in bt(Lane::even(a, b), Lane::odd(a, b), Lane::even(c2, d2), Lane::odd(c2, d2)).into_iter().enumerate() {
                        e.store(dst.add((grp * 4 + j) * WIDTH));
                    }
                }
            }
            for r in 0..rows.len() {
                let src = rows_b.as_ptr().add(2 * r * t.per_row * 4);
                let row_len = t.per_row * 4;
                for grp in 0..groups {
                    // The group's tiles inside the row: the lanes past its end are not stored.
                    let (at_tile, n) = (col0 + r * t.real + WIDTH * grp, WIDTH.min(t.real - WIDTH * grp));
                    for j in 0..4 {
                        let p = src.add((grp * 4 + j) * WIDTH);
                        let vals = bt(Lane::load(p), Lane::load(p.add(row_len)), Lane::load(p.add(2 * row_len)), Lane::load(p.add(3 * row_len)));
                        for (i, val) in vals.into_iter().enumerate() {
                            let dst = v.as_mut_ptr().add((i * 4 + j) * xi_stride + c * cols + at_tile);
                            if n == WIDTH {
                                val.store(dst);
                            } else {
                                val.store_first(dst, n);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// out[o, 2·ty.., 2·tx..] = Aᵀ M[·][o][tile] A (+ bias) for the tiles of `rows`, columns
/// `col0..` of M (16 x out_channels x `cols`, as transform_input lays out V): every output
/// element of those rows written. A row's last vector of lanes reads on into the next row's
/// tiles (or, at the end of a matrix, its SKEW): those lanes' outputs are not written.
///
/// SAFETY: as transform_input; out must hold [out_channels, out_height, out_width] floats.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(g: &Geometry, t: &Tiles, m: &[f32], cols: usize, col0: usize, rows: std::ops::Range<usize>, bias: Option<&[f32]>, out: *mut f32) {
    let (oh, ow, plane) = (g.out_height, g.out_width, g.out_plane());
    let xi_stride = g.out_channels * cols + SKEW;
    assert!(m.len() >= XI * xi_stride && col0 + rows.len() * t.real <= cols && t.per_row - t.real < SKEW);
    for o in 0..g.out_channels {
        let b = Lane::splat(bias.map_or(0.0, |b| b[o]));
        for (r, ty) in rows.clone().enumerate() {
            for tx in (0..t.per_row).step_by(WIDTH) {
                // SAFETY: M[ξ][o][tile..tile + WIDTH] is inside m: past a row's last tile by less
                // than SKEW (asserted above).
                let base = unsafe { m.as_ptr().add(o * cols + col0 + r * t.real + tx) };
                // Aᵀ down each column j of the 4x4 tile: s[j] = (row 0, row 1) of Aᵀ M.
                let s: [[Lane; 2]; 4] = std::array::from_fn(|j| unsafe {
                    let p = |i: usize| Lane::load(base.add((i * 4 + j) * xi_stride));
                    at(p(0), p(1), p(2), p(3))
                });
                for i in 0..2 {
                    let oy = 2 * ty + i;
                    if oy >= oh {
                        break;
                    }
                    let [y0, y1] = at(s[0][i], s[1][i], s[2][i], s[3][i]);
                    let (y0, y1) = (y0 + b, y1 + b);
                    // Columns 2tx .. 2tx + 2·WIDTH of output row oy, in order.
                    let (lo, hi) = (Lane::zip_lo(y0, y1), Lane::zip_hi(y0, y1));
                    let x0 = 2 * tx;
                    // SAFETY: out holds [out_channels, oh, ow]; only columns < ow are written.
                    unsafe {
                        let dst = out.add(o * plane + oy * ow + x0);
                        if x0 + 2 * WIDTH <= ow {
                            lo.store(dst);
                            hi.store(dst.add(WIDTH));
                        } else if x0 < ow {
                            let n = ow - x0;
                            lo.store_first(dst, n.min(WIDTH));
                            if n > WIDTH {
                                hi.store_first(dst.add(WIDTH), n - WIDTH);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Output [batch, out_channels, out_height, out_width] of the 3x3 stride-1 convolution of
/// `input` [batch, channels, height, width] with `weight` [out_channels, channels, 3, 3].
/// Needs `applies(g)`.
pub(crate) fn forward(g: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    assert!(runs_here(g), "{op}: Winograd F(2x2, 3x3) called on {g:?}");
    let u = transform_filters(g, weight, op)?;
    // SAFETY: run writes every output element (transform_output writes all of its rows).
    unsafe { try_written(op, g.batch * g.out_image_len(), |out| run(g, input, &u, bias, Slot { out, image_stride: g.out_image_len() }, op)) }
}

/// `forward` into `slot` (image n's planes at out + n·image_stride): conv2dConcat's.
///
/// SAFETY: as mod.rs `forward_into`.
pub(crate) unsafe fn forward_into(g: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, slot: Slot, op: &str) -> Result<()> {
    assert!(runs_here(g), "{op}: Winograd F(2x2, 3x3) called on {g:?}");
    let u = transform_filters(g, weight, op)?;
    run(g, input, &u, bias, slot, op)
}

/// Gradient [batch, channels, height, width] of the input from `grad_out`, plus `init` per input
/// channel: the forward of grad_out with filter [c, o] = weight[o, c] turned by 180°.
/// Needs `applies_to_input_grad(g)`.
pub(crate) fn input_grad(g: &Geometry, grad_out: &[f32], weight: &[f32], init: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let f = g.input_grad_as_forward().filter(runs_here).unwrap_or_else(|| panic!("{op}: Winograd input gradient called on {g:?}"));
    let mut turned = try_zeroed::<f32>(op, g.weight_len())?;
    for o in 0..g.out_channels {
        for c in 0..g.channels {
            for k in 0..9 {
                turned[(c * g.out_channels + o) * 9 + 8 - k] = weight[(o * g.channels + c) * 9 + k];
            }
        }
    }
    forward(&f, grad_out, &turned, init, op)
}

/// The units of `forward`: transforms and GEMMs per band of tile rows (or per few whole images),
/// into `out`.
///
/// SAFETY: `runs_here(g)`; slot valid for writes of out_channels · out_height · out_width floats
/// at out + n·image_stride for each image n.
unsafe fn run(g: &Geometry, input: &[f32], u: &[f32], bias: Option<&[f32]>, slot: Slot, op: &str) -> Result<()> {
    let t = Tiles::new(g);
    let (dst, image_stride) = (SendPtr(slot.out), slot.image_stride);
    let units = g.batch.div_ceil(t.images) * t.bands;
    let threads = if parallel_pays(g) { parallel::num_threads() } else { 1 };
    // Units in parallel when there are enough; else one after another, the 16 GEMMs of each
    // spread over the threads (each on one thread: at batch 1 a 14x14 or 7x7 image's n of 49 or
    // 16 tiles is too short to split one GEMM).
    let workers = if threads > 1 && units >= threads { threads } else { 1 };
    let scratch_len = t.scratch_len(g);
    let pool = RegionLock::new((0..workers).map(|_| Scratch::zeroed(op, scratch_len)).collect::<Result<Vec<_>>>()?);
    let failed = RegionLock::new(None::<KilnError>);
    parallel::for_each_chunk(units, if workers > 1 { units } else { 1 }, |start, end| {
        let popped = pool.with(|p| p.pop());
        // A pool thread calling in (nested parallelism) can find the pool empty: a fresh buffer.
        let mut scratch = match popped.map_or_else(|| Scratch::zeroed(op, scratch_len), Ok) {
            Ok(s) => s,
            Err(e) => {
                failed.with(|f| *f = Some(e));
                return;
            }
        };
        for unit in start..end {
            let (first, band) = (unit / t.bands * t.images, unit % t.bands);
            let images = first..(first + t.images).min(g.batch);
            let rows = band * t.band..((band + 1) * t.band).min(t.rows);
            let image_tiles = rows.len() * t.real;
            let tiles = images.len() * image_tiles;
            let (v_stride, m_stride) = (g.channels * tiles + SKEW, g.out_channels * tiles + SKEW);
            let (v, rest) = scratch.split_at_mut(XI * v_stride);
            let (m, rest) = rest.split_at_mut(XI * m_stride);
            let (padded, rows_b) = rest.split_at_mut((2 * t.band + 2) * t.padded_width);
            for (i, n) in images.clone().enumerate() {
                // SAFETY: the CPU has what the transforms need (`runs_here`).
                unsafe { transform_input(g, &t, &input[n * g.image_len()..(n + 1) * g.image_len()], rows.clone(), padded, rows_b, v, tiles, i * image_tiles) };
            }
            let m_out = SendPtr(m.as_mut_ptr());
            let v: &[f32] = v;
            let gemms = |start: usize, end: usize| {
                for xi in start..end {
                    let (a, b) = (&u[xi * g.out_channels * g.channels..], &v[xi * v_stride..]);
                    // SAFETY: M[xi] is out_channels x tiles inside m, written by this call alone;
                    // U[xi] and V[xi] are in bounds.
                    unsafe {
                        gemm(
                            g.out_channels, tiles, g.channels,
                            m_out.get().add(xi * m_stride), tiles as isize, 1, false,
                            a.as_ptr(), g.channels as isize, 1,
                            b.as_ptr(), tiles as isize, 1,
                            Parallelism::None,
                        );
                    }
                }
            };
            if workers == 1 && threads > 1 {
                parallel::for_each_chunk(XI, threads, gemms);
            } else {
                gemms(0, XI);
            }
            for (i, n) in images.clone().enumerate() {
                // SAFETY: this unit alone writes the output rows of its tile rows in image n.
                unsafe { transform_output(g, &t, m, tiles, i * image_tiles, rows.clone(), bias, dst.get().add(n * image_stride)) };
            }
        }
        pool.with(|p| p.push(scratch));
    });
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Against a float64 direct convolution (independent of every Kiln kernel), on shapes with odd
    //! sizes (partial tiles), padding 0, 1 and 2, bands split mid-image, and bias.
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn geometry(batch: usize, channels: usize, outs: usize, [h, w]: [usize; 2], pad: usize) -> Geometry {
        Geometry {
            batch,
            channels,
            height: h,
            width: w,
            out_channels: outs,
            out_height: h + 2 * pad - 2,
            out_width: w + 2 * pad - 2,
            kernel: [3, 3],
            stride: [1, 1],
            pad: [pad, pad],
            dilation: [1, 1],
            groups: 1,
        }
    }

    fn reference(g: &Geometry, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0f64; g.batch * g.out_image_len()];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oy in 0..g.out_height {
                    for ox in 0..g.out_width {
                        let mut s = bias[o] as f64;
                        for c in 0..g.channels {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let (iy, ix) = ((oy + ki) as isize - g.pad[0] as isize, (ox + kj) as isize - g.pad[1] as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.height && (ix as usize) < g.width {
                                        s += x[((n * g.channels + c) * g.height + iy as usize) * g.width + ix as usize] as f64 * w[((o * g.channels + c) * 3 + ki) * 3 + kj] as f64;
                                    }
                                }
                            }
                        }
                        out[((n * g.out_channels + o) * g.out_height + oy) * g.out_width + ox] = s;
                    }
                }
            }
        }
        out
    }

    fn input_grad_reference(g: &Geometry, dy: &[f32], w: &[f32], init: &[f32]) -> Vec<f64> {
        let mut dx: Vec<f64> = (0..g.batch * g.image_len()).map(|i| init[i / (g.height * g.width) % g.channels] as f64).collect();
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oy in 0..g.out_height {
                    for ox in 0..g.out_width {
                        let d = dy[((n * g.out_channels + o) * g.out_height + oy) * g.out_width + ox] as f64;
                        for c in 0..g.channels {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let (iy, ix) = ((oy + ki) as isize - g.pad[0] as isize, (ox + kj) as isize - g.pad[1] as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.height && (ix as usize) < g.width {
                                        dx[((n * g.channels + c) * g.height + iy as usize) * g.width + ix as usize] += d * w[((o * g.channels + c) * 3 + ki) * 3 + kj] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        dx
    }

    /// Shapes with odd sizes (partial tiles, partial lane groups), padding 0, 1 and 2, bands
    /// split mid-image, and conv2d-b's; at least 8 channels each way, so the input gradient (a
    /// forward from out_channels to channels) runs here too.
    fn cases() -> [Geometry; 9] {
        [
            // Several whole images per unit (an image is one band): 8 and 5 images of 7x7 tiles,
            // the last unit short; one image at batch 1 with its 16 GEMMs over the threads.
            geometry(8, 16, 24, [14, 14], 1),
            geometry(5, 8, 12, [7, 7], 1),
            geometry(1, 64, 64, [7, 7], 1),
            geometry(2, 8, 9, [9, 21], 1),
            geometry(1, 16, 8, [7, 7], 0),
            geometry(3, 9, 10, [5, 6], 2),
            geometry(1, 8, 8, [40, 37], 1),   // several bands per image
            geometry(2, 64, 16, [32, 32], 1), // conv2d-b's shape, fewer filters
            geometry(1, 12, 20, [67, 66], 1), // several lane groups per tile row, a partial last one
        ]
    }

    fn assert_close(g: &Geometry, got: &[f32], want: &[f64], terms: usize) {
        // Error bound of a sum of `terms` products of values in [-1, 1].
        let tol = 1e-6 * terms as f64;
        assert_eq!(got.len(), want.len());
        for (k, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((*a as f64 - b).abs() <= tol * (1.0 + b.abs()), "{g:?}: element {k}: {a} vs {b}");
        }
    }

    #[test]
    fn both_passes_match_float64_reference() {
        for (i, g) in cases().iter().enumerate() {
            if !runs_here(g) {
                eprintln!("skipped: no AVX-512 on this CPU");
                return;
            }
            let seed = 5 * i as u64;
            let (x, w, dy) = (values(g.batch * g.image_len(), seed + 1), values(g.weight_len(), seed + 2), values(g.batch * g.out_image_len(), seed + 3));
            let (bias, init) = (values(g.out_channels, seed + 4), values(g.channels, seed + 5));
            let y = forward(g, &x, &w, Some(&bias), "test").unwrap();
            assert_close(g, &y, &reference(g, &x, &w, &bias), 9 * g.channels);
            let dx = input_grad(g, &dy, &w, Some(&init), "test").unwrap();
            assert_close(g, &dx, &input_grad_reference(g, &dy, &w, &init), 9 * g.out_channels);
        }
    }

    #[test]
    fn other_shapes_are_left_to_im2col() {
        let mut g = geometry(1, 8, 4, [8, 8], 1);
        g.stride = [2, 2];
        assert!(!fits(&g));
        assert!(!fits(&geometry(1, 1, 32, [28, 28], 1)));
        // Too few output channels for the input gradient's GEMMs.
        assert!(!applies_to_input_grad(&geometry(1, 8, 4, [8, 8], 1)));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn calls_of_few_tiles_are_left_to_direct() {
        if crate::simd::level() != crate::simd::SimdLevel::Avx512 {
            return;
        }
        assert!(applies(&geometry(1, 64, 64, [28, 28], 1)));
        assert!(applies(&geometry(8, 256, 256, [14, 14], 1)));
        assert!(!applies(&geometry(8, 512, 512, [7, 7], 1)));
        assert!(!applies(&geometry(1, 256, 256, [14, 14], 1)));
    }
}
