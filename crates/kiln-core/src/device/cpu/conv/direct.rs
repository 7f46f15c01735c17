//! A direct convolution for unit stride and one group (any kernel size, padding and dilation),
//! with AVX-512 register-blocked micro-kernels; issue 18 measured it against im2col + GEMM
//! (bench/conv-passes.mjs, `KILN_CONV_PATH=im2col` runs the old path for the comparison).
//!
//! The trick that makes it one kernel for every kernel size: each input channel is copied once,
//! zero-padded, into a plane of `out_height + (kh-1)·dh` rows of `padded_width = out_width +
//! (kw-1)·dw` floats. Output (oh, ow) then reads tap (ki, kj) at flat index `p + ki·dh·padded_width
//! + kj·dw` with `p = oh·padded_width + ow`: consecutive outputs read consecutive inputs, so a
//! vector of 16 outputs is one unaligned load per tap, with no bound test and no im2col copy.
//! Positions `ow >= out_width` (the last `(kw-1)·dw` of each padded row) are computed and thrown
//! away: 2 of 34 columns on a 32-wide 3x3.
//!
//! - forward:        a tile of MR output channels x TILE positions accumulates every tap in 24
//!   registers (`forward_tile`), then `store_tile` copies its valid outputs out while the tile is
//!   in L1: that copy is where a fused epilogue (bias, activation) runs.
//! - input gradient: for unit stride it is the forward of dy with the filters flipped and
//!   transposed and padding `(k-1)·d - pad`, so it runs the same kernel.
//! - weight gradient: dW[o, tap] = Σ_p dy[o, p] · x[p + offset(tap)], a dot product over the
//!   padded positions (dy copied into the padded grid with zeros in the thrown-away columns):
//!   DW_O output channels x DW_T taps accumulate in 24 registers (`weight_tile`).

use super::engine::run_units;
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::parallel::{self, SendPtr};
use crate::storage::{try_zeroed, Scratch};
use std::arch::x86_64::*;

/// Output channels of one forward tile (filters are packed in blocks of MR).
const MR: usize = 8;
/// 16-float vectors of positions in one forward tile.
const NV: usize = 3;
/// Positions of one forward tile.
const TILE: usize = NV * 16;
/// Forward tiles per work unit: 384 positions, so a unit's slice of every input channel stays
/// in L2 while it runs through all the filter blocks.
const TILES_PER_UNIT: usize = 8;
/// Output channels x taps of one weight-gradient block.
const DW_O: usize = 4;
const DW_T: usize = 6;

/// Whether the direct kernels serve this convolution: AVX-512 (the kernels are written for it;
/// other CPUs keep im2col + GEMM), unit stride, one group, not pointwise (a 1x1 convolution's
/// im2col is the image itself, so its GEMM has nothing to save), unless `KILN_CONV_PATH=im2col`
/// asks for the GEMM path (read per call, so a bench or test can compare both in one process).
/// Empty convolutions (no image, channel or output) stay on the GEMM path, which handles them.
pub(crate) fn applies(g: &Geometry) -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
        && g.macs() > 0
        && g.stride == [1, 1]
        && g.groups == 1
        && !g.is_pointwise()
        && std::env::var_os("KILN_CONV_PATH").is_none_or(|v| v != "im2col")
}

/// The input gradient also needs the flipped convolution's padding `(k-1)·d - pad` to be >= 0
/// (a padding larger than the dilated kernel leaves output borders no tap reaches).
pub(crate) fn applies_to_input_grad(g: &Geometry) -> bool {
    applies(g) && (0..2).all(|i| g.pad[i] <= (g.kernel[i] - 1) * g.dilation[i])
}

/// One unit-stride correlation: `channels` planes of height x width in, `out_channels` planes
/// of out_height x out_width out; output (oh, ow) reads input (oh + ki·dh - pad_top, ow + kj·dw -
/// pad_left) through tap (ki, kj).
#[derive(Clone, Copy)]
struct Shape {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    out_height: usize,
    out_width: usize,
    kernel: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
}

impl Shape {
    fn of_forward(g: &Geometry) -> Shape {
        Shape {
            batch: g.batch,
            channels: g.channels,
            height: g.height,
            width: g.width,
            out_channels: g.out_channels,
            out_height: g.out_height,
            out_width: g.out_width,
            kernel: g.kernel,
            dilation: g.dilation,
            pad: g.pad,
        }
    }

    /// The input gradient as a forward: dy in, dx out, padding `(k-1)·d - pad`.
    fn of_input_grad(g: &Geometry) -> Shape {
        let flipped = |i: usize| (g.kernel[i] - 1) * g.dilation[i] - g.pad[i];
        Shape {
            batch: g.batch,
            channels: g.out_channels,
            height: g.out_height,
            width: g.out_width,
            out_channels: g.channels,
            out_height: g.height,
            out_width: g.width,
            kernel: g.kernel,
            dilation: g.dilation,
            pad: [flipped(0), flipped(1)],
        }
    }

    fn padded_width(&self) -> usize {
        self.out_width + (self.kernel[1] - 1) * self.dilation[1]
    }
    fn padded_height(&self) -> usize {
        self.out_height + (self.kernel[0] - 1) * self.dilation[0]
    }
    /// Positions of the padded output grid (out_height rows of padded_width).
    fn positions(&self) -> usize {
        self.out_height * self.padded_width()
    }
    /// Floats between two padded planes: the plane, plus zeros that the last tile's vector loads
    /// may run into (a tile reads up to TILE - 1 past its last real position).
    fn plane_stride(&self) -> usize {
        self.padded_height() * self.padded_width() + (self.kernel[1] - 1) * self.dilation[1] + TILE
    }
    fn taps(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }
    /// Offset of each tap (channel, ki, kj), in weight order, from a position in the padded input.
    fn tap_offsets(&self) -> Vec<usize> {
        let (wp, stride, [kh, kw], [dh, dw]) = (self.padded_width(), self.plane_stride(), self.kernel, self.dilation);
        let mut offsets = Vec::with_capacity(self.taps());
        for c in 0..self.channels {
            for ki in 0..kh {
                for kj in 0..kw {
                    offsets.push(c * stride + ki * dh * wp + kj * dw);
                }
            }
        }
        offsets
    }
}

/// Every image of `input` ([batch, channels, height, width]) zero-padded into `shape`'s planes.
fn pad_images(s: &Shape, input: &[f32], op: &str) -> Result<Scratch> {
    let (stride, wp, hp) = (s.plane_stride(), s.padded_width(), s.padded_height());
    let mut padded = Scratch::zeroed(op, s.batch * s.channels * stride)?;
    let dst = SendPtr(padded.as_mut_ptr());
    let plane = s.height * s.width;
    // Padded column `col` holds input column `col - pad_left`; likewise for rows.
    let cols = s.pad[1].min(wp)..(s.pad[1] + s.width).min(wp);
    parallel::for_each_chunk(s.batch * s.channels, parallel::chunk_count(s.batch * s.channels * stride), |start, end| {
        for bc in start..end {
            // SAFETY: this chunk alone writes planes start..end.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(bc * stride), stride) };
            let src = &input[bc * plane..(bc + 1) * plane];
            for r in s.pad[0].min(hp)..(s.pad[0] + s.height).min(hp) {
                let row = &src[(r - s.pad[0]) * s.width..];
                out[r * wp + cols.start..r * wp + cols.end].copy_from_slice(&row[cols.start - s.pad[1]..cols.end - s.pad[1]]);
            }
        }
    });
    Ok(padded)
}

/// Filters in forward-tile order: block of MR output channels, then tap, then the MR channels
/// (zeros past out_channels). `weight(o, tap)` reads filter o's tap in `Shape::tap_offsets` order.
fn pack_filters(s: &Shape, weight: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let (taps, blocks) = (s.taps(), s.out_channels.div_ceil(MR));
    let mut packed = vec![0.0; blocks * taps * MR];
    for o in 0..s.out_channels {
        let block = &mut packed[(o / MR) * taps * MR..];
        for t in 0..taps {
            block[t * MR + o % MR] = weight(o, t);
        }
    }
    packed
}

/// out = correlate(input, filters) (+ bias per output channel), out [batch, out_channels,
/// out_height, out_width], all written.
fn correlate(s: &Shape, input: &[f32], filters: &[f32], bias: Option<&[f32]>, out: &mut [f32], op: &str) -> Result<()> {
    let padded = pad_images(s, input, op)?;
    let offsets = s.tap_offsets();
    let (taps, blocks) = (s.taps(), s.out_channels.div_ceil(MR));
    let tiles = s.positions().div_ceil(TILE);
    let chunks = tiles.div_ceil(TILES_PER_UNIT);
    let (stride, out_plane) = (s.plane_stride(), s.out_height * s.out_width);
    let dst = SendPtr(out.as_mut_ptr());
    run_units(op, s.batch * chunks, 0, |unit, _, _| {
        let (n, chunk) = (unit / chunks, unit % chunks);
        let image = &padded[n * s.channels * stride..(n + 1) * s.channels * stride];
        let mut tile = [0.0f32; MR * TILE];
        for block in 0..blocks {
            let w = &filters[block * taps * MR..(block + 1) * taps * MR];
            for t in chunk * TILES_PER_UNIT..((chunk + 1) * TILES_PER_UNIT).min(tiles) {
                // SAFETY: AVX-512 is present (`applies`); every load stays inside `image`: the
                // farthest is the last tap's offset + the last tile's end, within plane_stride.
                unsafe { forward_tile(image.as_ptr().add(t * TILE), &offsets, w.as_ptr(), &mut tile) };
                let rows = MR.min(s.out_channels - block * MR);
                // SAFETY: this unit alone writes image n's positions of tiles in its chunk.
                let image_out = unsafe { dst.ptr().add((n * s.out_channels + block * MR) * out_plane) };
                store_tile(s, &tile, rows, t * TILE, bias.map(|b| &b[block * MR..block * MR + rows]), image_out);
            }
        }
    })?;
    Ok(())
}

/// Copies the valid outputs of a tile (padded positions p0..p0+TILE of `rows` output channels)
/// into their planes at `out` (out_plane floats apart), adding the bias. The tile is in L1 here.
fn store_tile(s: &Shape, tile: &[f32; MR * TILE], rows: usize, p0: usize, bias: Option<&[f32]>, out: *mut f32) {
    let (wp, ow, plane) = (s.padded_width(), s.out_width, s.out_height * s.out_width);
    let end = (p0 + TILE).min(s.positions());
    let mut p = p0;
    while p < end {
        let (oh, col) = (p / wp, p % wp);
        let run_end = (p - col + ow).min(end);
        if col < ow {
            for r in 0..rows {
                let src = &tile[r * TILE + p - p0..r * TILE + run_end - p0];
                // SAFETY: (oh, col..) is inside plane r; the caller owns these positions.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.add(r * plane + oh * ow + col), src.len()) };
                match bias {
                    Some(b) => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v + b[r]),
                    None => dst.copy_from_slice(src),
                }
            }
        }
        p = p - col + wp;
    }
}

/// tile[r, 0..TILE] = Σ_taps filters[tap, r] · x[offset(tap) + 0..TILE], for MR rows r.
///
/// SAFETY: needs AVX-512F; x + offset + TILE must stay inside x's buffer for every offset, and
/// filters must hold offsets.len() x MR floats.
#[target_feature(enable = "avx512f")]
unsafe fn forward_tile(x: *const f32, offsets: &[usize], filters: *const f32, tile: &mut [f32; MR * TILE]) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        let src = x.add(off);
        let mut v = [_mm512_setzero_ps(); NV];
        for (j, v) in v.iter_mut().enumerate() {
            *v = _mm512_loadu_ps(src.add(16 * j));
        }
        let w = filters.add(t * MR);
        for (r, acc) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*w.add(r));
            for j in 0..NV {
                acc[j] = _mm512_fmadd_ps(b, v[j], acc[j]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (j, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(tile.as_mut_ptr().add(r * TILE + 16 * j), *a);
        }
    }
}

/// Output [batch, out_channels, out_height, out_width] of the convolution of `input` with
/// `weight` [out_channels, channels, kh, kw] (+ bias). Needs `applies(geo)`.
pub(crate) fn forward(geo: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    let taps = s.taps();
    let filters = pack_filters(&s, |o, t| weight[o * taps + t]);
    let mut out = try_zeroed::<f32>(op, geo.batch * geo.out_image_len())?;
    correlate(&s, input, &filters, bias, &mut out, op)?;
    Ok(out)
}

/// Gradient [batch, channels, height, width] of the input from `grad_out`, plus `init` per input
/// channel: the forward of grad_out with each filter flipped and in/out channels swapped.
/// Needs `applies_to_input_grad(geo)`.
pub(crate) fn input_grad(geo: &Geometry, grad_out: &[f32], weight: &[f32], init: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_input_grad(geo);
    let [kh, kw] = geo.kernel;
    let (patch, kk) = (geo.patch(), kh * kw);
    // Flipped filter c, tap (o, ki, kj) is weight[o, c, kh-1-ki, kw-1-kj].
    let filters = pack_filters(&s, |c, t| {
        let (o, k) = (t / kk, t % kk);
        weight[o * patch + c * kk + (kk - 1 - k)]
    });
    let mut dx = try_zeroed::<f32>(op, geo.batch * geo.image_len())?;
    correlate(&s, grad_out, &filters, init, &mut dx, op)?;
    Ok(dx)
}

/// Gradient [out_channels, channels, kh, kw] of the weight, summed over the batch. Needs
/// `applies(geo)`.
pub(crate) fn weight_grad(geo: &Geometry, input: &[f32], grad_out: &[f32], op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    let padded = pad_images(&s, input, op)?;
    let grads = pad_grad_out(&s, grad_out, op)?;
    let (taps, stride, len) = (s.taps(), s.plane_stride(), padded_grad_len(&s));
    let mut offsets = s.tap_offsets();
    // Taps in blocks of DW_T: the last block repeats offset 0 and its sums are dropped.
    offsets.resize(taps.div_ceil(DW_T) * DW_T, 0);
    let o_blocks = s.out_channels.div_ceil(DW_O);
    // Units are (image, block of output channels); each worker sums into its own dW.
    let o_chunks = o_blocks.min(parallel::num_threads().div_ceil(s.batch).max(1));
    let scratches = run_units(op, s.batch * o_chunks, s.out_channels * taps, |unit, dw, _| {
        let (n, chunk) = (unit / o_chunks, unit % o_chunks);
        let image = &padded[n * s.channels * stride..];
        let dy = &grads[n * o_blocks * DW_O * len..(n + 1) * o_blocks * DW_O * len];
        let mut sums = [[0.0f32; DW_T]; DW_O];
        for ob in o_blocks * chunk / o_chunks..o_blocks * (chunk + 1) / o_chunks {
            for (tb, offs) in offsets.chunks_exact(DW_T).enumerate() {
                let offs: &[usize; DW_T] = offs.try_into().expect("chunks_exact");
                // SAFETY: AVX-512 is present (`applies`); dy holds DW_O rows of len from
                // ob·DW_O; each x load ends before offset + len + 16 <= the image's planes.
                unsafe { weight_tile(dy[ob * DW_O * len..].as_ptr(), len, image.as_ptr(), offs, &mut sums) };
                for (r, row) in sums.iter().enumerate() {
                    let o = ob * DW_O + r;
                    if o < s.out_channels {
                        for (j, &v) in row.iter().enumerate().take(taps.saturating_sub(tb * DW_T)) {
                            dw[o * taps + tb * DW_T + j] += v;
                        }
                    }
                }
            }
        }
    })?;
    let mut total = try_zeroed::<f32>(op, s.out_channels * taps)?;
    for scratch in &scratches {
        total.iter_mut().zip(scratch.iter()).for_each(|(a, b)| *a += *b);
    }
    Ok(total)
}

/// Floats of one padded dy row: the padded positions, rounded up to whole vectors.
fn padded_grad_len(s: &Shape) -> usize {
    s.positions().next_multiple_of(16)
}

/// grad_out [batch, out_channels, out_height, out_width] laid into the padded grid (zeros in the
/// thrown-away columns and in rows past out_channels up to whole DW_O blocks).
fn pad_grad_out(s: &Shape, grad_out: &[f32], op: &str) -> Result<Scratch> {
    let (len, wp, ow, plane) = (padded_grad_len(s), s.padded_width(), s.out_width, s.out_height * s.out_width);
    let rows = s.out_channels.div_ceil(DW_O) * DW_O;
    let mut padded = Scratch::zeroed(op, s.batch * rows * len)?;
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            let src = &grad_out[(n * s.out_channels + o) * plane..][..plane];
            let dst = &mut padded[(n * rows + o) * len..][..len];
            for (oh, row) in src.chunks_exact(ow).enumerate() {
                dst[oh * wp..oh * wp + ow].copy_from_slice(row);
            }
        }
    }
    Ok(padded)
}

/// sums[r][j] = Σ_{p < len} dy[r·len + p] · x[offsets[j] + p], for DW_O rows r and DW_T taps j.
///
/// SAFETY: needs AVX-512F; len is a multiple of 16; dy holds DW_O·len floats and x is valid up
/// to max(offsets) + len.
#[target_feature(enable = "avx512f")]
unsafe fn weight_tile(dy: *const f32, len: usize, x: *const f32, offsets: &[usize; DW_T], sums: &mut [[f32; DW_T]; DW_O]) {
    let mut acc = [[_mm512_setzero_ps(); DW_T]; DW_O];
    let mut p = 0;
    while p < len {
        let mut d = [_mm512_setzero_ps(); DW_O];
        for (r, d) in d.iter_mut().enumerate() {
            *d = _mm512_loadu_ps(dy.add(r * len + p));
        }
        for j in 0..DW_T {
            let xv = _mm512_loadu_ps(x.add(offsets[j] + p));
            for r in 0..DW_O {
                acc[r][j] = _mm512_fmadd_ps(d[r], xv, acc[r][j]);
            }
        }
        p += 16;
    }
    for (sum, acc) in sums.iter_mut().zip(&acc) {
        for (s, a) in sum.iter_mut().zip(acc) {
            *s = _mm512_reduce_add_ps(*a);
        }
    }
}
