//! Winograd F(2x2, 3x3): the forward pass of 3x3 stride-1 convolutions on wasm32.
//!
//! Why: on one WASM thread im2col + GEMM runs at the SIMD128 GEMM's speed (gemm_simd128.rs, near
//! the 4-lane multiply-add peak), so the only way left to a faster 3x3 convolution is fewer
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
//! Layout: a unit of work is a band of tile rows of one image. Its V (16 x channels x tiles) and
//! M (16 x out_channels x tiles) are built in a worker's scratch, each ~1 MiB at most
//! (BAND_TILES), so they stay in L2 between the transforms and the GEMMs. The transforms work on
//! 4 horizontally adjacent tiles at once, one per SIMD lane: the columns of 4 tiles that start 2
//! apart are the even and odd lanes of two vector loads. Each tile row is padded to a multiple
//! of 4 tiles; the extra tiles read zeros and their outputs are not written.
//!
//! Only the forward pass: the weight gradient is a different shape of problem (a 3x3 result) and
//! the input gradient already matches the forward's speed (bench:conv).

use super::lanes::F4;
use crate::device::cpu::gemm_call::{gemm, Parallelism};
use crate::error::{KilnError, Result};
use crate::params::conv::Geometry;
use crate::parallel::{self, RegionLock, SendPtr};
use crate::storage::{try_zeroed, Scratch};

/// Points of a transformed tile: 4 x 4.
const XI: usize = 16;
/// Tiles per unit of work at most (the GEMMs' n): V for 64 channels is then 16 x 64 x 256 floats
/// = 1 MiB.
const BAND_TILES: usize = 256;
/// Floats between the 16 matrices of V (and of M) beyond their size: with 64 channels and 256
/// tiles each matrix is 64 KiB, so without a skew the 16 streams a transform reads or writes
/// (one per point ξ) all map to the same L1 cache set and evict each other (L1 is 12-way).
/// One cache line of skew puts them in 16 different sets.
const SKEW: usize = 16;
/// Below this many input channels the GEMMs' inner dimension is too short to pay for the
/// transforms (a 1-channel image, conv2d-a, stays on im2col + GEMM).
const MIN_CHANNELS: usize = 8;

/// Whether the forward pass of `g` runs here: wasm32 builds, 3x3 kernels, stride and dilation
/// 1, one group, enough channels, padding of at most 2 (a wider border reads only zeros).
pub(crate) fn applies(g: &Geometry) -> bool {
    cfg!(target_arch = "wasm32") && fits(g)
}

fn fits(g: &Geometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1 && g.channels >= MIN_CHANNELS && g.pad[0] <= 2 && g.pad[1] <= 2 && g.out_height > 0 && g.out_width > 0
}

/// How the output is cut into tiles and bands of tile rows.
#[derive(Clone, Copy)]
struct Tiles {
    /// Tile rows of an image.
    rows: usize,
    /// Tiles per tile row, rounded up to a multiple of 4 (the lanes).
    per_row: usize,
    /// Tile rows per band.
    band: usize,
    /// Bands per image.
    bands: usize,
    /// Width of the zero-padded input rows a band is copied into: 2 columns per tile + 2.
    padded_width: usize,
}

impl Tiles {
    fn new(g: &Geometry) -> Tiles {
        let rows = g.out_height.div_ceil(2);
        let per_row = g.out_width.div_ceil(2).div_ceil(4) * 4;
        let band = (BAND_TILES / per_row).clamp(1, rows);
        Tiles { rows, per_row, band, bands: rows.div_ceil(band), padded_width: 2 * per_row + 2 }
    }

    /// Floats of one worker's scratch: V, M, and for one channel the padded input rows and those
    /// rows with B applied (4 floats per tile each).
    fn scratch_len(&self, g: &Geometry) -> usize {
        let tiles = self.band * self.per_row;
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
fn bt(d0: F4, d1: F4, d2: F4, d3: F4) -> [F4; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// Aᵀ applied to 4 values of a transformed column or row: the 2 outputs.
#[inline(always)]
fn at(m0: F4, m1: F4, m2: F4, m3: F4) -> [F4; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// V (16 x channels x tiles, tiles = band rows · per_row; matrix ξ at ξ · (channels · tiles +
/// SKEW)) of tile rows `rows` of `image`.
///
/// In two passes per channel, each with few vectors live (V8 spills beyond 15): B along every
/// padded input row once (`rows_b`: each row serves two tile rows), then Bᵀ down each tile's 4
/// rows of that. Measured: one pass holding a whole 4x4 tile of 4 lanes took 31% of the
/// convolution's time, in a CPU profile of conv2d-b.
fn transform_input(g: &Geometry, t: &Tiles, image: &[f32], rows: std::ops::Range<usize>, padded: &mut [f32], rows_b: &mut [f32], v: &mut [f32]) {
    let (pw, plane) = (t.padded_width, g.height * g.width);
    let tiles = rows.len() * t.per_row;
    let in_rows = 2 * rows.len() + 2;
    let groups = t.per_row / 4;
    assert!(padded.len() >= in_rows * pw && rows_b.len() >= in_rows * t.per_row * 4 && v.len() >= XI * (g.channels * tiles + SKEW));
    let xi_stride = g.channels * tiles + SKEW;
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
        // 8·group + 0..10 stay inside its pw = 8·groups + 2 floats.
        unsafe {
            // rows_b[y][group][j]: column j of the 4 tiles of `group`, B applied along row y.
            for y in 0..in_rows {
                let src = padded.as_ptr().add(y * pw);
                let dst = rows_b.as_mut_ptr().add(y * t.per_row * 4);
                for grp in 0..groups {
                    let p = src.add(8 * grp);
                    let (a, b, c2, d2) = (F4::load(p), F4::load(p.add(4)), F4::load(p.add(2)), F4::load(p.add(6)));
                    for (j, e) in bt(F4::even(a, b), F4::odd(a, b), F4::even(c2, d2), F4::odd(c2, d2)).into_iter().enumerate() {
                        e.store(dst.add((grp * 4 + j) * 4));
                    }
                }
            }
            for r in 0..rows.len() {
                let src = rows_b.as_ptr().add(2 * r * t.per_row * 4);
                let row_len = t.per_row * 4;
                for grp in 0..groups {
                    let at_tile = r * t.per_row + 4 * grp;
                    for j in 0..4 {
                        let p = src.add((grp * 4 + j) * 4);
                        let vals = bt(F4::load(p), F4::load(p.add(row_len)), F4::load(p.add(2 * row_len)), F4::load(p.add(3 * row_len)));
                        for (i, val) in vals.into_iter().enumerate() {
                            val.store(v.as_mut_ptr().add((i * 4 + j) * xi_stride + c * tiles + at_tile));
                        }
                    }
                }
            }
        }
    }
}

/// out[o, 2·ty.., 2·tx..] = Aᵀ M[·][o][tile] A (+ bias) for the tiles of `rows`.
fn transform_output(g: &Geometry, t: &Tiles, m: &[f32], rows: std::ops::Range<usize>, bias: Option<&[f32]>, out: *mut f32) {
    let (oh, ow, plane) = (g.out_height, g.out_width, g.out_plane());
    let tiles = rows.len() * t.per_row;
    let xi_stride = g.out_channels * tiles + SKEW;
    assert!(m.len() >= XI * xi_stride);
    for o in 0..g.out_channels {
        let b = F4::splat(bias.map_or(0.0, |b| b[o]));
        for (r, ty) in rows.clone().enumerate() {
            for tx in (0..t.per_row).step_by(4) {
                // SAFETY: M[ξ][o][tile..tile + 4] is inside m (asserted above).
                let base = unsafe { m.as_ptr().add(o * tiles + r * t.per_row + tx) };
                // Aᵀ down each column j of the 4x4 tile: s[j] = (row 0, row 1) of Aᵀ M.
                let s: [[F4; 2]; 4] = std::array::from_fn(|j| unsafe {
                    let p = |i: usize| F4::load(base.add((i * 4 + j) * xi_stride));
                    at(p(0), p(1), p(2), p(3))
                });
                for i in 0..2 {
                    let oy = 2 * ty + i;
                    if oy >= oh {
                        break;
                    }
                    let [y0, y1] = at(s[0][i], s[1][i], s[2][i], s[3][i]);
                    let (y0, y1) = (y0 + b, y1 + b);
                    // Columns 2tx .. 2tx+8 of output row oy, in order.
                    let (lo, hi) = (F4::zip_lo(y0, y1), F4::zip_hi(y0, y1));
                    let x0 = 2 * tx;
                    // SAFETY: out holds [out_channels, oh, ow]; only columns < ow are written.
                    unsafe {
                        let dst = out.add(o * plane + oy * ow + x0);
                        if x0 + 8 <= ow {
                            lo.store(dst);
                            hi.store(dst.add(4));
                        } else {
                            let vals = [lo.to_array(), hi.to_array()].concat();
                            for (j, &v) in vals.iter().enumerate().take(ow.saturating_sub(x0)) {
                                *dst.add(j) = v;
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
pub(crate) fn forward(g: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    assert!(fits(g), "{op}: Winograd F(2x2, 3x3) called on {g:?}");
    let t = Tiles::new(g);
    let u = transform_filters(g, weight, op)?;
    let mut out = try_zeroed::<f32>(op, g.batch * g.out_image_len())?;
    let dst = SendPtr(out.as_mut_ptr());
    let units = g.batch * t.bands;
    let threads = parallel::num_threads();
    // Units in parallel when there are enough; else one after another, each GEMM on every thread.
    let (workers, par) = if threads > 1 && units >= threads { (threads, Parallelism::None) } else if threads > 1 { (1, Parallelism::Threads) } else { (1, Parallelism::None) };
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
            let (n, band) = (unit / t.bands, unit % t.bands);
            let rows = band * t.band..((band + 1) * t.band).min(t.rows);
            let tiles = rows.len() * t.per_row;
            let (v_stride, m_stride) = (g.channels * tiles + SKEW, g.out_channels * tiles + SKEW);
            let (v, rest) = scratch.split_at_mut(XI * v_stride);
            let (m, rest) = rest.split_at_mut(XI * m_stride);
            let (padded, rows_b) = rest.split_at_mut((2 * t.band + 2) * t.padded_width);
            transform_input(g, &t, &input[n * g.image_len()..(n + 1) * g.image_len()], rows.clone(), padded, rows_b, v);
            for xi in 0..XI {
                let (a, b) = (&u[xi * g.out_channels * g.channels..], &v[xi * v_stride..]);
                // SAFETY: M[xi] is out_channels x tiles inside m; U[xi] and V[xi] are in bounds.
                unsafe {
                    gemm(
                        g.out_channels, tiles, g.channels,
                        m.as_mut_ptr().add(xi * m_stride), tiles as isize, 1, false,
                        a.as_ptr(), g.channels as isize, 1,
                        b.as_ptr(), tiles as isize, 1,
                        par,
                    );
                }
            }
            // SAFETY: this unit alone writes the output rows of its tile rows in image n.
            transform_output(g, &t, m, rows, bias, unsafe { dst.get().add(n * g.out_image_len()) });
        }
        pool.with(|p| p.push(scratch));
    });
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    Ok(out)
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

    #[test]
    fn forward_matches_float64_reference() {
        let cases = [
            geometry(2, 8, 5, [9, 21], 1),
            geometry(1, 16, 3, [7, 7], 0),
            geometry(3, 9, 4, [5, 6], 2),
            geometry(1, 8, 2, [40, 37], 1),   // several bands per image
            geometry(2, 64, 16, [32, 32], 1), // conv2d-b's shape, fewer filters
        ];
        for (i, g) in cases.iter().enumerate() {
            assert!(fits(g));
            let x = values(g.batch * g.image_len(), 3 * i as u64 + 1);
            let w = values(g.weight_len(), 3 * i as u64 + 2);
            let bias = values(g.out_channels, 3 * i as u64 + 3);
            let got = forward(g, &x, &w, Some(&bias), "test").unwrap();
            let want = reference(g, &x, &w, &bias);
            // Error bound of a sum of 9·channels products of values in [-1, 1].
            let tol = 1e-6 * (9 * g.channels) as f64;
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((*a as f64 - b).abs() <= tol * (1.0 + b.abs()), "{g:?}: element {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn other_shapes_are_left_to_im2col() {
        let mut g = geometry(1, 8, 4, [8, 8], 1);
        g.stride = [2, 2];
        assert!(!fits(&g));
        assert!(!fits(&geometry(1, 1, 32, [28, 28], 1)));
    }
}
