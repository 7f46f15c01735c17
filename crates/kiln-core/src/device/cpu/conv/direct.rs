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
//! Stride (sh, sw), for few_channels.rs's forward (`Shape::stride`): the padded plane is copied
//! as sh·sw phase planes, phase (a, b) holding padded rows a, a + sh, ... and columns b, b + sw,
//! ... (a space-to-depth). Output (oh, ow) reads tap (ki, kj) in phase ((ki·dh) % sh, (kj·dw) %
//! sw) at row oh + (ki·dh) / sh, column ow + (kj·dw) / sw: planes `out_width + (kw-1)·dw / sw`
//! wide, the same trick. At unit stride there is one phase: the plane above. This file's own
//! tiles ran ResNet-50's 3x3 stride-2 convolutions on phase planes too, faster than im2col + GEMM
//! alone (examples/cnn_convs.rs: 116-123 against 80-104 GFLOP per CPU-second for 128 channels at
//! 56x56) but not inside the model at batch 8 (bench/onnx-op-profile.mjs, two alternating pairs:
//! 6-12% more CPU than im2col, against the unchanged 1x1 stride-2 rows), so they stay on im2col.
//!
//! - forward:        a tile of MR output channels x 16·NV positions accumulates every tap in 24
//!   registers (`forward_tile`; 8 channels by 48 positions, 6 by 64 where that wastes less on
//!   small images, fewer channels by more positions for convolutions with few outputs), then
//!   `store_tile` copies its valid outputs out while the tile is in L1: that copy is where the
//!   bias and the fused epilogue (residual, activation) run. Work units are an image's positions
//!   (up to UNIT_POSITIONS) times a range of output-channel blocks: small images at batch 1 are
//!   one unit of positions, and the channel ranges keep both threads busy.
//! - input gradient: for unit stride it is the forward of dy with the filters flipped and
//!   transposed and padding `(k-1)·d - pad`, so it runs the same kernel.
//! - weight gradient: dW[o, tap] = Σ_p dy[o, p] · x[p + offset(tap)] over the output positions,
//!   with dy transposed to [position, output channel] (16 x 16 blocks in registers): 16·OV
//!   output channels (vectors) x NT taps (broadcast inputs) accumulate in 24 registers
//!   (`weight_tile`), so no horizontal sums, over blocks of whole output rows: a row's valid
//!   positions only, where summing over the padded grid spent 2 of 34 columns' FMAs on zeros.
//!   A first version kept dy as [channel, position] and summed 4x6 dot products: LLVM spilled
//!   its accumulators and it ran at half im2col's speed. On conv2d-b the tiles run at about the
//!   machine's FMA rate measured alone (a loop of independent FMAs, ~116 GFLOP per CPU-second
//!   on the 2026-12 machine; im2col + GEMM reaches 65-84 on dW's own GEMM, M=64 N=576 K=8192).

use super::engine::{parallel_pays_for, run_units};
use super::epilogue::SliceEpilogue;
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::params::unary::UnaryOp;
use crate::parallel::SendPtr;
use crate::alloc::try_written;
use super::Slot;
use crate::storage::try_zeroed;
use std::arch::x86_64::*;

/// Accumulator registers of every micro-kernel: 24 of the 32 AVX-512 registers, the rest hold
/// the loaded operands.
const ACC: usize = 24;
/// Floats of one forward tile: MR output channels x NV·16 positions, MR·NV = ACC.
const TILE_FLOATS: usize = ACC * 16;
/// Positions of one forward work unit (whole tiles): a unit's slice of every input channel stays
/// in L2 while it runs through all the filter blocks.
const UNIT_POSITIONS: usize = 384;
/// Input channels below which im2col + GEMM stays: with few taps per output (conv2d-a: one
/// channel, 9 taps) the passes are bound by memory and per-tile costs, not FMAs, and measured
/// slower here (bench/conv-passes.mjs, loaded machine, GFLOP per CPU-second direct vs im2col:
/// forward 28.8 vs 39.0, dX 21.3 vs 57.3, dW 6.7 vs 18.0), while conv2d-b (64 channels) gains.
pub(super) const MIN_CHANNELS: usize = 8;
/// Work units a forward pass is cut into per thread at least: an image with fewer units of
/// positions (ResNet-50's 14x14 and 7x7 layers at batch 1: one unit) is also cut by blocks of
/// output channels, so every thread works and a descheduled one delays the pass by a small unit.
const UNITS_PER_THREAD: usize = 4;
/// Output positions (batch x padded positions) from which a forward packs its filters: packing
/// costs some 60 multiply-adds' time per filter float (a scalar scatter against 32 FMA lanes per
/// cycle), so from here it is a few percent of the convolution (BlockFilters).
const PACK_MIN_POSITIONS: usize = 1024;
/// Positions of one weight-gradient block: its dy rows stay in L1 while every tap block reads them.
const DW_POSITIONS: usize = 128;

/// Whether the direct kernels serve this convolution: AVX-512 (the kernels are written for it;
/// other CPUs keep im2col + GEMM), unit stride, one group, not pointwise (a 1x1 convolution's
/// im2col is the image itself, so its GEMM has nothing to save), at least MIN_CHANNELS input
/// channels, unless `KILN_CONV_PATH=im2col` asks for the GEMM path (read per call, so a bench or
/// test can compare both in one process). Empty convolutions stay on the GEMM path too.
pub(crate) fn applies(g: &Geometry) -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
        && g.macs() > 0
        && g.channels >= MIN_CHANNELS
        && g.stride == [1, 1]
        && g.groups == 1
        && !g.is_pointwise()
        && std::env::var_os("KILN_CONV_PATH").is_none_or(|v| v != "im2col")
}

/// A stride no larger than the kernel on each axis: the sh·sw phase planes a strided forward
/// copies (see the top of this file) are then all read, and there are at most kh·kw of them (a
/// 1x1 kernel of stride 2³¹ would ask for 2³¹ planes to read one; a 1x1 stride-2 projection for
/// 4, of which it reads one).
pub(super) fn stride_within_kernel(g: &Geometry) -> bool {
    (0..2).all(|i| g.stride[i] <= g.kernel[i])
}

/// The input gradient also needs the flipped convolution's padding `(k-1)·d - pad` to be >= 0
/// (a padding larger than the dilated kernel leaves output borders no tap reaches).
pub(crate) fn applies_to_input_grad(g: &Geometry) -> bool {
    applies(g) && g.input_grad_as_forward().is_some()
}

/// One correlation: `channels` planes of height x width in, `out_channels` planes of out_height x
/// out_width out; output (oh, ow) reads input (oh·sh + ki·dh - pad_top, ow·sw + kj·dw - pad_left)
/// through tap (ki, kj).
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) batch: usize,
    pub(super) channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) out_channels: usize,
    pub(super) out_height: usize,
    pub(super) out_width: usize,
    pub(super) kernel: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) pad: [usize; 2],
    pub(super) stride: [usize; 2],
    /// Floats from one image's output to the next: out_channels·out_height·out_width, or more
    /// when the output is a channel slice of a wider one (conv2dConcat, mod.rs `Slot`).
    pub(super) out_image_stride: usize,
}

impl Shape {
    pub(super) fn of_forward(g: &Geometry) -> Shape {
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
            stride: g.stride,
            out_image_stride: g.out_image_len(),
        }
    }

    /// Multiply-adds of the correlation (engine::parallel_pays_for decides its threads by them).
    pub(super) fn macs(&self) -> usize {
        self.batch * self.out_channels * self.out_height * self.out_width * self.taps()
    }
    /// Rows or columns (axis 0 or 1) a phase plane holds beyond the output's.
    pub(super) fn reach(&self, axis: usize) -> usize {
        (self.kernel[axis] - 1) * self.dilation[axis] / self.stride[axis]
    }
    /// Width of a (phase) plane: out_width + (kw-1)·dw / sw.
    pub(super) fn padded_width(&self) -> usize {
        self.out_width + self.reach(1)
    }
    /// Height of a (phase) plane.
    pub(super) fn padded_height(&self) -> usize {
        self.out_height + self.reach(0)
    }
    /// Phase planes per channel: sh·sw.
    pub(super) fn phases(&self) -> usize {
        self.stride[0] * self.stride[1]
    }
    /// Positions of the padded output grid (out_height rows of padded_width).
    fn positions(&self) -> usize {
        self.out_height * self.padded_width()
    }
    /// Floats between two padded planes of a whole image (the weight gradient's copy): its reads
    /// stop before offset + positions, inside the plane but for the last tap's (kw-1)·dw.
    fn plane_stride(&self) -> usize {
        self.padded_height() * self.padded_width() + (self.kernel[1] - 1) * self.dilation[1]
    }
    /// Rows of each phase plane a forward unit of `unit` positions copies: it starts inside its
    /// first row, and its last tile reads reach(0) rows and reach(1) < padded_width columns further.
    fn band_rows(&self, unit: usize) -> usize {
        unit.div_ceil(self.padded_width()) + 2 + self.reach(0)
    }
    pub(super) fn taps(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }
    /// Offset of each tap (channel, ki, kj), in weight order, from a position in (phase) planes
    /// `stride` floats apart, a channel's sh·sw phases in a row.
    pub(super) fn tap_offsets(&self, stride: usize) -> Vec<usize> {
        let (wp, [kh, kw], [dh, dw], [sh, sw]) = (self.padded_width(), self.kernel, self.dilation, self.stride);
        let mut offsets = Vec::with_capacity(self.taps());
        for c in 0..self.channels {
            for ki in 0..kh {
                for kj in 0..kw {
                    let phase = c * self.phases() + (ki * dh) % sh * sw + (kj * dw) % sw;
                    offsets.push(phase * stride + (ki * dh / sh) * wp + kj * dw / sw);
                }
            }
        }
        offsets
    }
}

/// Rows `rows` (of 0..padded_height) of every phase plane of every channel of `image` ([channels,
/// height, width]) into `dst`, planes `stride` floats apart from local row 0, every float of those
/// rows written (the buffer is a worker's, reused: padding must be written, not assumed).
pub(super) fn pad_rows(s: &Shape, image: &[f32], rows: std::ops::Range<usize>, dst: &mut [f32], stride: usize) {
    let (wp, plane, [sh, sw]) = (s.padded_width(), s.height * s.width, s.stride);
    // Padded column `col` holds input column `col - pad_left`; likewise for rows. Row r of phase
    // (a, b) is padded row a + r·sh, its column j padded column b + j·sw.
    for c in 0..s.channels {
        let src = &image[c * plane..(c + 1) * plane];
        for phase in 0..s.phases() {
            let (a, b) = (phase / sw, phase % sw);
            let first = (c * s.phases() + phase) * stride;
            for (local, r) in rows.clone().enumerate() {
                let out = &mut dst[first + local * wp..first + (local + 1) * wp];
                let Some(input) = (a + r * sh).checked_sub(s.pad[0]).filter(|&ih| ih < s.height).map(|ih| &src[ih * s.width..(ih + 1) * s.width]) else {
                    out.fill(0.0);
                    continue;
                };
                // Columns j of this phase inside the image: b + j·sw - pad_left in 0..width.
                let lo = s.pad[1].saturating_sub(b).div_ceil(sw).min(wp);
                let hi = (s.pad[1] + s.width).saturating_sub(b).div_ceil(sw).clamp(lo, wp);
                out[..lo].fill(0.0);
                out[hi..].fill(0.0);
                let first_col = b + lo * sw - s.pad[1];
                if sw == 1 {
                    out[lo..hi].copy_from_slice(&input[first_col..first_col + hi - lo]);
                } else {
                    for (v, x) in out[lo..hi].iter_mut().zip(input[first_col..].iter().step_by(sw)) {
                        *v = *x;
                    }
                }
            }
        }
    }
}

/// Filters in forward-tile order: block of `mr` output channels, then tap, then the `mr`
/// channels (zeros past out_channels). `weight(o, tap)` reads filter o's tap in
/// `Shape::tap_offsets` order.
pub(super) fn pack_filters(s: &Shape, mr: usize, weight: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let (taps, blocks) = (s.taps(), s.out_channels.div_ceil(mr));
    let mut packed = vec![0.0; blocks * taps * mr];
    for o in 0..s.out_channels {
        let block = &mut packed[(o / mr) * taps * mr..];
        for t in 0..taps {
            block[t * mr + o % mr] = weight(o, t);
        }
    }
    packed
}

/// Output channels of one forward tile: 8 (by 48 positions), or fewer for convolutions with
/// fewer outputs (an input gradient with one input channel: then 1 by 384 positions), so no
/// tile computes rows it throws away.
pub(crate) fn tile_rows(out_channels: usize) -> usize {
    match out_channels {
        8.. => 8,
        4..=7 => 4,
        2..=3 => 2,
        _ => 1,
    }
}

/// The filters of a correlation: a forward's weight as it is ([out_channels, taps], read in
/// place), or `weight(o, tap)` as in `pack_filters` (the input gradient's flipped filters).
enum Filters<'a, F: Fn(usize, usize) -> f32> {
    Rows(&'a [f32]),
    Function(F),
}

/// Where the forward tiles read their filters, block by block of MR output channels: a pointer to
/// the block's first float and the strides between its rows and between its taps. A float32
/// weight is read in place or packed once per call (`BlockFilters`); quantized weights expand
/// one block at a time into a worker's scratch (device/cpu/quant/tile_filters.rs), so their
/// float32 weight is never whole.
pub(crate) trait TileFilters: Sync {
    /// Floats of a worker's scratch that `block` needs (0 when the blocks are stored).
    fn scratch_len(&self) -> usize;
    /// (first float, row stride, tap stride) of block `block`, stored or expanded into
    /// `scratch`; its MR rows x taps floats stay readable while `scratch` is not written.
    fn block(&self, block: usize, scratch: &mut [f32]) -> (*const f32, usize, usize);
}

/// Filters as forward_tile reads them: per block of MR output channels, a pointer and the
/// strides between its rows and between its taps. Packing them (MR channels of a tap side by
/// side: the tile's broadcasts at fixed offsets) is a single-threaded pass over the whole weight
/// on every call, which cost more than the convolution itself where each filter float serves
/// few outputs (ResNet-50's 512-channel 3x3 layers at batch 1: 2.4 M floats for 64 padded
/// positions). Below PACK_MIN_POSITIONS positions per filter float, a forward reads the weight
/// in place (a row stride per channel) and packs only a last, partial block (zero rows); above
/// it, the packed tile ran faster (SqueezeNet batch 8's 3x3 expands: 10-30% more GFLOP per
/// CPU-second packed, loaded machine).
struct BlockFilters<'a> {
    data: std::borrow::Cow<'a, [f32]>,
    packed: bool,
    tail: Vec<f32>,
    taps: usize,
    mr: usize,
    full_blocks: usize,
}

impl<'a> BlockFilters<'a> {
    fn new<F: Fn(usize, usize) -> f32>(s: &Shape, mr: usize, filters: Filters<'a, F>) -> BlockFilters<'a> {
        let (taps, full_blocks) = (s.taps(), s.out_channels / mr);
        match filters {
            Filters::Function(weight) => BlockFilters { data: pack_filters(s, mr, weight).into(), packed: true, tail: Vec::new(), taps, mr, full_blocks },
            Filters::Rows(rows) if s.batch * s.positions() >= PACK_MIN_POSITIONS => {
                let weight = |o: usize, t: usize| rows[o * taps + t];
                BlockFilters { data: pack_filters(s, mr, weight).into(), packed: true, tail: Vec::new(), taps, mr, full_blocks }
            }
            Filters::Rows(rows) => {
                let mut tail = vec![0.0; if s.out_channels % mr == 0 { 0 } else { taps * mr }];
                for o in full_blocks * mr..s.out_channels {
                    for t in 0..taps {
                        tail[t * mr + o % mr] = rows[o * taps + t];
                    }
                }
                BlockFilters { data: rows.into(), packed: false, tail, taps, mr, full_blocks }
            }
        }
    }

}

impl TileFilters for BlockFilters<'_> {
    fn scratch_len(&self) -> usize {
        0
    }

    fn block(&self, b: usize, _: &mut [f32]) -> (*const f32, usize, usize) {
        if self.packed {
            (self.data[b * self.taps * self.mr..].as_ptr(), 1, self.mr)
        } else if b < self.full_blocks {
            (self.data[b * self.mr * self.taps..].as_ptr(), self.taps, 1)
        } else {
            (self.tail.as_ptr(), 1, self.mr)
        }
    }
}

/// out = correlate(input, filters) (+ bias per output channel), then the epilogue, out [batch,
/// out_channels, out_height, out_width], every element written (never read: out may be
/// uninitialized).
///
/// SAFETY: out must be valid for writes of batch·out_channels·out_height·out_width floats.
unsafe fn correlate<F: Fn(usize, usize) -> f32>(s: &Shape, input: &[f32], weight: Filters<F>, bias: Option<&[f32]>, epilogue: SliceEpilogue, out: *mut f32, op: &str) -> Result<()> {
    let (mr, _) = forward_tile_shape(s);
    correlate_rows(mr, s, input, &BlockFilters::new(s, mr, weight), bias, epilogue, out, op)
}

/// `correlate_tiles` for blocks of `mr` output channels (a `forward_tile_shape` row count).
///
/// SAFETY: as `correlate`.
#[allow(clippy::too_many_arguments)]
unsafe fn correlate_rows(mr: usize, s: &Shape, input: &[f32], filters: &impl TileFilters, bias: Option<&[f32]>, epilogue: SliceEpilogue, out: *mut f32, op: &str) -> Result<()> {
    match mr {
        8 => correlate_tiles::<8, 3>(s, input, filters, bias, epilogue, out, op),
        6 => correlate_tiles::<6, 4>(s, input, filters, bias, epilogue, out, op),
        4 => correlate_tiles::<4, 6>(s, input, filters, bias, epilogue, out, op),
        2 => correlate_tiles::<2, 12>(s, input, filters, bias, epilogue, out, op),
        _ => correlate_tiles::<1, 24>(s, input, filters, bias, epilogue, out, op),
    }
}

/// The forward tile (output channels MR, vectors of positions NV): `tile_rows`' choice, or 6 by
/// 64 positions where that computes fewer thrown-away outputs. A 7x7 output is 63 padded
/// positions: two 48-wide tiles compute 96 (ResNet-50's 512-channel 3x3 layers ran at 52 GFLOP
/// per CPU-second against 85-90 for the larger images), one 64-wide tile 64.
fn forward_tile_shape(s: &Shape) -> (usize, usize) {
    let rows = tile_rows(s.out_channels);
    let computed = |(mr, nv): (usize, usize)| s.positions().next_multiple_of(16 * nv) * s.out_channels.next_multiple_of(mr);
    if rows == 8 && computed((6, 4)) < computed((8, 3)) {
        (6, 4)
    } else {
        (rows, ACC / rows)
    }
}

/// SAFETY: as `correlate`.
unsafe fn correlate_tiles<const MR: usize, const NV: usize>(
    s: &Shape, input: &[f32], filters: &impl TileFilters, bias: Option<&[f32]>, epilogue: SliceEpilogue, out: *mut f32, op: &str,
) -> Result<()> {
    let (blocks, tile_len) = (s.out_channels.div_ceil(MR), NV * 16);
    let tiles = s.positions().div_ceil(tile_len);
    // A unit's tiles: up to UNIT_POSITIONS, and no more than the image has (the band it pads is
    // sized by them: a 7x7 image's planes then sit 108 floats apart, not 423).
    let per_unit = (UNIT_POSITIONS / tile_len).clamp(1, tiles.max(1));
    let chunks = tiles.div_ceil(per_unit);
    // Units of positions too few for the threads: cut the filter blocks into `splits` ranges too.
    let threads = if parallel_pays_for(s.macs()) { crate::parallel::num_threads() } else { 1 };
    let wanted = if threads > 1 { threads * UNITS_PER_THREAD } else { 1 };
    let splits = wanted.div_ceil((s.batch * chunks).max(1)).clamp(1, blocks.max(1));
    let per_split = blocks.div_ceil(splits);
    let splits = blocks.div_ceil(per_split).max(1);
    // Each unit pads the rows its tiles read into its worker's band (cache-hot, reused), not a
    // padded copy of the whole batch.
    let (band_rows, wp, hp) = (s.band_rows(per_unit * tile_len), s.padded_width(), s.padded_height());
    let stride = band_rows * wp;
    let offsets = s.tap_offsets(stride);
    let out_plane = s.out_height * s.out_width;
    let dst = SendPtr(out);
    let image_len = s.channels * s.height * s.width;
    run_units(op, s.macs(), s.batch * chunks * splits, s.channels * stride + filters.scratch_len(), |unit, scratch, _| {
        let (band, own) = scratch.split_at_mut(s.channels * stride);
        let (n, chunk, split) = (unit / (chunks * splits), unit / splits % chunks, unit % splits);
        let first = chunk * per_unit * tile_len;
        let row0 = first / wp;
        pad_rows(s, &input[n * image_len..(n + 1) * image_len], row0..(row0 + band_rows).min(hp), band, stride);
        let mut tile = [0.0f32; TILE_FLOATS];
        for block in split * per_split..((split + 1) * per_split).min(blocks) {
            let w = filters.block(block, own);
            let rows = MR.min(s.out_channels - block * MR);
            for t in chunk * per_unit..((chunk + 1) * per_unit).min(tiles) {
                // SAFETY: AVX-512 is present (`applies`); every load stays inside `band`: the
                // farthest is the last channel's last tap + the unit's end, within band_rows;
                // the block's MR rows of taps are readable (BlockFilters::block).
                unsafe {
                    let x = band.as_ptr().add(t * tile_len - row0 * wp);
                    // The packed layout's strides as constants: the broadcasts' addresses are
                    // then immediate offsets (runtime strides measured slower).
                    if (w.1, w.2) == (1, MR) {
                        forward_tile::<MR, NV, true>(x, &offsets, w, &mut tile)
                    } else {
                        forward_tile::<MR, NV, false>(x, &offsets, w, &mut tile)
                    }
                };
                let at = Stored { out: dst.ptr(), offset: n * s.out_image_stride + block * MR * out_plane, rows, p0: t * tile_len };
                // SAFETY: this unit alone writes image n's positions of tiles in its chunk, for
                // the output channels of its blocks.
                unsafe { store_tile(s, &tile[..MR * tile_len], tile_len, at, bias.map(|b| &b[block * MR..block * MR + rows]), epilogue) };
            }
        }
    })?;
    Ok(())
}

/// Where a tile goes: `rows` output channels from element `offset` of the output at `out` (the
/// first channel's plane of one image), padded positions from `p0`.
struct Stored {
    out: *mut f32,
    offset: usize,
    rows: usize,
    p0: usize,
}

/// Copies the valid outputs of a tile (rows tile_len apart) into their planes (out_plane floats
/// apart), adding the bias and the residual and applying the activation while the tile is in L1:
/// relu in the copy itself, the others on each copied run.
///
/// SAFETY: the caller owns those output positions; AVX-512 is present (`applies`).
unsafe fn store_tile(s: &Shape, tile: &[f32], tile_len: usize, at: Stored, bias: Option<&[f32]>, epilogue: SliceEpilogue) {
    let (wp, ow, plane) = (s.padded_width(), s.out_width, s.out_height * s.out_width);
    let end = (at.p0 + tile_len).min(s.positions());
    let relu = matches!(epilogue.activation, Some(a) if a.op == UnaryOp::Relu);
    let after = SliceEpilogue { residual: None, activation: if relu { None } else { epilogue.activation } };
    let mut p = at.p0;
    while p < end {
        let (oh, col) = (p / wp, p % wp);
        let run_end = (p - col + ow).min(end);
        if col < ow {
            for r in 0..at.rows {
                let src = &tile[r * tile_len + p - at.p0..r * tile_len + run_end - at.p0];
                let offset = at.offset + r * plane + oh * ow + col;
                let residual = epilogue.residual.map(|res| &res[offset..offset + src.len()]);
                // SAFETY: (oh, col..) is inside plane r, and the caller owns these positions.
                unsafe {
                    copy_run(src, at.out.add(offset), Addends { bias: bias.map(|b| b[r]), residual }, relu);
                    after.apply(at.out, offset, 1, 0, src.len());
                }
            }
        }
        p = p - col + wp;
    }
}

/// What copy_run adds to a run: its channel's bias, the residual's run.
struct Addends<'a> {
    bias: Option<f32>,
    residual: Option<&'a [f32]>,
}

/// dst[..src.len()] = src (+ bias) (+ residual), then max(., 0) if `relu`, 16 floats at a time
/// with a masked last step: runs are an output row or less, so a memcpy call per run cost more
/// than the copy (conv2d-a's 3x3 taps of one channel spend 216 FMAs per 384 outputs).
///
/// SAFETY: needs AVX-512F; dst valid for src.len() writes; the residual run as long as src.
#[target_feature(enable = "avx512f")]
unsafe fn copy_run(src: &[f32], dst: *mut f32, add: Addends, relu: bool) {
    let bias = _mm512_set1_ps(add.bias.unwrap_or(0.0));
    for start in (0..src.len()).step_by(16) {
        let n = (src.len() - start).min(16);
        let mask: __mmask16 = if n == 16 { !0 } else { (1u16 << n) - 1 };
        let mut v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(start));
        if add.bias.is_some() {
            v = _mm512_add_ps(v, bias);
        }
        if let Some(r) = add.residual {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, r.as_ptr().add(start)));
        }
        if relu {
            v = _mm512_max_ps(v, _mm512_setzero_ps());
        }
        _mm512_mask_storeu_ps(dst.add(start), mask, v);
    }
}

/// tile[r·16·NV + 0..16·NV] = Σ_taps filter(r, tap) · x[offset(tap) + 0..16·NV], for MR rows r,
/// filter(r, tap) at `filters.0 + r·filters.1 + tap·filters.2` (BlockFilters::block); PACKED
/// says the strides are (1, MR).
///
/// SAFETY: needs AVX-512F; x + offset + 16·NV must stay inside x's buffer for every offset,
/// filters must hold MR rows of offsets.len() taps at those strides, and MR·NV <= ACC.
#[target_feature(enable = "avx512f")]
unsafe fn forward_tile<const MR: usize, const NV: usize, const PACKED: bool>(x: *const f32, offsets: &[usize], filters: (*const f32, usize, usize), tile: &mut [f32; TILE_FLOATS]) {
    let (w, row_stride, tap_stride) = if PACKED { (filters.0, 1, MR) } else { filters };
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for (t, &off) in offsets.iter().enumerate() {
        let src = x.add(off);
        let mut v = [_mm512_setzero_ps(); NV];
        for (j, v) in v.iter_mut().enumerate() {
            *v = _mm512_loadu_ps(src.add(16 * j));
        }
        let w = w.add(t * tap_stride);
        for (r, acc) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*w.add(r * row_stride));
            for j in 0..NV {
                acc[j] = _mm512_fmadd_ps(b, v[j], acc[j]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (j, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(tile.as_mut_ptr().add((r * NV + j) * 16), *a);
        }
    }
}

/// Output [batch, out_channels, out_height, out_width] of the convolution of `input` with
/// `weight` [out_channels, channels, kh, kw] (+ bias), then the epilogue. Needs `applies(geo)`.
pub(crate) fn forward(geo: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    let rows = Filters::<fn(usize, usize) -> f32>::Rows(weight);
    // SAFETY: correlate writes every output element.
    unsafe { try_written(op, geo.batch * geo.out_image_len(), |out| correlate(&s, input, rows, bias, epilogue, out, op)) }
}

/// `forward` into `slot` (image n's planes at out + n·image_stride), no residual: conv2dConcat's.
/// Needs `applies(geo)`.
///
/// SAFETY: as mod.rs `forward_into`.
pub(crate) unsafe fn forward_into(geo: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, slot: Slot, op: &str) -> Result<()> {
    assert!(epilogue.residual.is_none(), "conv: a strided direct forward takes no residual");
    let s = Shape { out_image_stride: slot.image_stride, ..Shape::of_forward(geo) };
    correlate(&s, input, Filters::<fn(usize, usize) -> f32>::Rows(weight), bias, epilogue, slot.out, op)
}

/// `forward` with the filters from `filters` (blocks of `tile_rows(out_channels)` output channels
/// in `pack_filters` order), no epilogue: the quantized convolutions' entry. Needs `applies(geo)`.
pub(crate) fn forward_with(geo: &Geometry, input: &[f32], filters: &impl TileFilters, bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    // SAFETY: correlate_rows writes every output element.
    unsafe { try_written(op, geo.batch * geo.out_image_len(), |out| correlate_rows(tile_rows(s.out_channels), &s, input, filters, bias, SliceEpilogue::default(), out, op)) }
}

/// Gradient [batch, channels, height, width] of the input from `grad_out`, plus `init` per input
/// channel: the forward of grad_out with each filter flipped and in/out channels swapped.
/// Needs `applies_to_input_grad(geo)`.
pub(crate) fn input_grad(geo: &Geometry, grad_out: &[f32], weight: &[f32], init: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(&geo.input_grad_as_forward().expect("conv: direct input gradient needs applies_to_input_grad"));
    let [kh, kw] = geo.kernel;
    let (patch, kk) = (geo.patch(), kh * kw);
    // Flipped filter c, tap (o, ki, kj) is weight[o, c, kh-1-ki, kw-1-kj].
    let flipped = |c: usize, t: usize| {
        let (o, k) = (t / kk, t % kk);
        weight[o * patch + c * kk + (kk - 1 - k)]
    };
    // SAFETY: correlate writes every element of dx.
    unsafe { try_written(op, geo.batch * geo.image_len(), |dx| correlate(&s, grad_out, Filters::Function(flipped), init, SliceEpilogue::default(), dx, op)) }
}

/// Gradient [out_channels, channels, kh, kw] of the weight, summed over the batch. Needs
/// `applies(geo)`.
pub(crate) fn weight_grad(geo: &Geometry, input: &[f32], grad_out: &[f32], op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    match s.out_channels.div_ceil(16) {
        1 => weight_grad_blocks::<1, 24>(&s, input, grad_out, op),
        2 => weight_grad_blocks::<2, 12>(&s, input, grad_out, op),
        3 => weight_grad_blocks::<3, 8>(&s, input, grad_out, op),
        _ => weight_grad_blocks::<4, 6>(&s, input, grad_out, op),
    }
}

/// dW in blocks of OV·16 output channels x NT taps (OV·NT = ACC), over blocks of whole output
/// rows (about DW_POSITIONS positions) of each image; units are images, each worker sums into
/// its own dWᵀ [taps, out].
fn weight_grad_blocks<const OV: usize, const NT: usize>(s: &Shape, input: &[f32], grad_out: &[f32], op: &str) -> Result<Vec<f32>> {
    let (taps, stride, plane) = (s.taps(), s.plane_stride(), s.out_height * s.out_width);
    let (outs, tap_blocks) = (padded_outs(s), taps.div_ceil(NT));
    let mut offsets = s.tap_offsets(stride);
    // The last tap block repeats offset 0; its extra sums land in rows past `taps`, dropped.
    offsets.resize(tap_blocks * NT, 0);
    let o_blocks = outs.div_ceil(16 * OV);
    let block_rows = (DW_POSITIONS / s.out_width.max(1)).max(1);
    // A worker's scratch: its dWᵀ accumulator, then image n padded and dy[n] transposed, both
    // rebuilt per image in the same (cache-hot) memory.
    let (dw_len, image_len, dy_len) = (tap_blocks * NT * outs, s.channels * s.height * s.width, plane * outs);
    // dy rows start on a cache line (16 floats of slack): the tiles' 16·OV-float loads of them,
    // unaligned, each touched two lines.
    let scratches = run_units(op, s.macs(), s.batch, dw_len + s.channels * stride + dy_len + 16, |n, scratch, _| {
        let (dwt, rest) = scratch.split_at_mut(dw_len);
        let (image, rest) = rest.split_at_mut(s.channels * stride);
        let skip = rest.as_ptr().align_offset(64);
        let dy = &mut rest[skip..skip + dy_len];
        pad_rows(s, &input[n * image_len..(n + 1) * image_len], 0..s.padded_height(), image, stride);
        transpose_grad_out(s, &grad_out[n * s.out_channels * plane..(n + 1) * s.out_channels * plane], dy);
        for r0 in (0..s.out_height).step_by(block_rows) {
            let rows = Rows { count: block_rows.min(s.out_height - r0), width: s.out_width, stride: s.padded_width() };
            for (tb, offs) in offsets.chunks_exact(NT).enumerate() {
                let offs: &[usize; NT] = offs.try_into().expect("chunks_exact");
                for ob in 0..o_blocks {
                    // Blocks of OV vectors; a last, narrower block (outs not a multiple of
                    // 16·OV) reads and writes only its own vectors.
                    let o0 = ob * 16 * OV;
                    // SAFETY: AVX-512 is present (`applies`); dy rows r0·ow.. hold `outs` floats
                    // from o0 for every position of the block's rows; each x read is below
                    // offset + out_height·padded_width <= the planes; dwt holds tap_blocks·NT
                    // rows of `outs`.
                    unsafe {
                        let (dy, x, out) = (dy.as_ptr().add(r0 * s.out_width * outs + o0), image.as_ptr().add(r0 * rows.stride), dwt.as_mut_ptr().add(tb * NT * outs + o0));
                        match ((outs - o0) / 16).min(OV) {
                            1 => weight_tile::<1, NT>(dy, outs, x, offs, rows, out),
                            2 => weight_tile::<2, NT>(dy, outs, x, offs, rows, out),
                            3 => weight_tile::<3, NT>(dy, outs, x, offs, rows, out),
                            _ => weight_tile::<OV, NT>(dy, outs, x, offs, rows, out),
                        }
                    }
                }
            }
        }
    })?;
    let mut total = try_zeroed::<f32>(op, s.out_channels * taps)?;
    for scratch in &scratches {
        for (t, row) in scratch[..dw_len].chunks_exact(outs).take(taps).enumerate() {
            for (o, &v) in row[..s.out_channels].iter().enumerate() {
                total[o * taps + t] += v;
            }
        }
    }
    Ok(total)
}

/// The output rows a weight tile sums over: `count` rows of `width` positions, dy's rows one
/// after another (compact), the padded image's `stride` floats apart.
#[derive(Clone, Copy)]
struct Rows {
    count: usize,
    width: usize,
    stride: usize,
}

/// Output channels rounded up to whole vectors: the width of a dyᵀ row.
fn padded_outs(s: &Shape) -> usize {
    s.out_channels.next_multiple_of(16)
}

/// One image of grad_out [out_channels, out_height·out_width] as dyᵀ [position, padded_outs] in
/// `t`: a row of every output channel per output position, zeros past out_channels (all written:
/// the buffer is reused). Blocks of 16 channels x 16 positions are transposed in registers
/// (`transpose_block`): the element-by-element scatter it replaces (a division per element, a
/// cache line per store) cost conv2d-b about a quarter of its weight gradient.
fn transpose_grad_out(s: &Shape, grad_out: &[f32], t: &mut [f32]) {
    let (outs, plane) = (padded_outs(s), s.out_height * s.out_width);
    assert!(grad_out.len() == s.out_channels * plane && t.len() == plane * outs, "conv: weight gradient's dyᵀ out of bounds");
    // 16 channels at a time over the whole plane: 16 streams of reads for the prefetcher to
    // follow (all 64 channels' rows at once ran slower).
    for o0 in (0..outs).step_by(16) {
        for i0 in (0..plane).step_by(16) {
            let block = Block { rows: s.out_channels.saturating_sub(o0).min(16), cols: (plane - i0).min(16) };
            // SAFETY: AVX-512 is present (`applies`); grad_out rows o0..o0+rows hold positions
            // i0..i0+cols, and t rows i0..i0+cols hold `outs` >= o0 + 16 floats (asserted).
            unsafe { transpose_block(grad_out.as_ptr().add(o0 * plane + i0), plane, block, t.as_mut_ptr().add(i0 * outs + o0), outs) };
        }
    }
}

/// The used part of a 16 x 16 block: `rows` rows of `cols` floats.
#[derive(Clone, Copy)]
struct Block {
    rows: usize,
    cols: usize,
}

/// dst[j·dst_stride + i] = src[i·src_stride + j] for i < 16, j < block.cols, zero where i >=
/// block.rows: 16 masked loads, the transpose in registers (`transpose16`), block.cols stores of
/// 16 floats.
///
/// SAFETY: needs AVX-512F; src valid for block.rows rows of block.cols floats, dst for
/// block.cols rows of 16 floats.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(src: *const f32, src_stride: usize, block: Block, dst: *mut f32, dst_stride: usize) {
    let mask: __mmask16 = if block.cols >= 16 { !0 } else { (1u16 << block.cols) - 1 };
    let mut rows = [_mm512_setzero_ps(); 16];
    // Fixed trip counts, so the 16 rows stay in registers (a loop of `block.rows` loads kept
    // them in memory); a row past block.rows loads nothing (mask 0 reads no memory).
    for (i, row) in rows.iter_mut().enumerate() {
        let mask = if i < block.rows { mask } else { 0 };
        *row = _mm512_maskz_loadu_ps(mask, src.wrapping_add(i * src_stride));
    }
    transpose16(&mut rows);
    for (j, row) in rows.iter().enumerate() {
        if j < block.cols {
            _mm512_storeu_ps(dst.add(j * dst_stride), *row);
        }
    }
}

/// Transposes the 16 x 16 matrix whose rows are `rows`: for each bit b of an index (8, 4, 2, 1),
/// rows i and i + b (i without bit b) swap their elements at columns with bit b set in i's
/// and clear in i + b's; swapping row bit b with column bit b for every b is the transpose.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(rows: &mut [__m512; 16]) {
    swap_bit::<8>(rows);
    swap_bit::<4>(rows);
    swap_bit::<2>(rows);
    swap_bit::<1>(rows);
}

/// One step of `transpose16`: rows i and i + B exchange the B-wide halves described there.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn swap_bit<const B: usize>(rows: &mut [__m512; 16]) {
    // permutex2var's indices: 0..16 pick from row i, 16..32 from row i + B.
    let (mut low, mut high) = ([0i32; 16], [0i32; 16]);
    for k in 0..16 {
        (low[k], high[k]) = if k & B == 0 { (k as i32, (k + B) as i32) } else { ((16 + k - B) as i32, (16 + k) as i32) };
    }
    let (low, high) = (_mm512_loadu_si512(low.as_ptr().cast()), _mm512_loadu_si512(high.as_ptr().cast()));
    for i in 0..16 {
        if i & B == 0 {
            let (a, c) = (rows[i], rows[i + B]);
            rows[i] = _mm512_permutex2var_ps(a, low, c);
            rows[i + B] = _mm512_permutex2var_ps(a, high, c);
        }
    }
}

/// out[j·outs + 16·v + lane] += Σ_{row, col} dy[(row·width + col)·outs + 16·v + lane] ·
/// x[offsets[j] + row·stride + col] over the `rows`, for NT taps j and OV vectors v of output
/// channels.
///
/// SAFETY: needs AVX-512F; dy holds rows.count·rows.width rows of `outs` floats (16·OV read from
/// each), x is valid up to max(offsets) + (rows.count - 1)·rows.stride + rows.width, out holds
/// NT rows of `outs` (16·OV written in each); OV·NT <= ACC.
#[target_feature(enable = "avx512f")]
unsafe fn weight_tile<const OV: usize, const NT: usize>(dy: *const f32, outs: usize, x: *const f32, offsets: &[usize; NT], rows: Rows, out: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); OV]; NT];
    for row in 0..rows.count {
        let (dy, x) = (dy.add(row * rows.width * outs), x.add(row * rows.stride));
        for p in 0..rows.width {
            let mut d = [_mm512_setzero_ps(); OV];
            for (v, d) in d.iter_mut().enumerate() {
                *d = _mm512_loadu_ps(dy.add(p * outs + 16 * v));
            }
            for (j, acc) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*x.add(offsets[j] + p));
                for v in 0..OV {
                    acc[v] = _mm512_fmadd_ps(b, d[v], acc[v]);
                }
            }
        }
    }
    for (j, acc) in acc.iter().enumerate() {
        for (v, a) in acc.iter().enumerate() {
            let o = out.add(j * outs + 16 * v);
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *a));
        }
    }
}
