//! The AVX-512 forward in NCHWc, after MLAS's design (onnxruntime's snchwc.cpp and
//! SconvKernelAvx512F.S): a register tile of NB output blocks (up to 4: 64 channels) x P output
//! pixels of one row (up to 6 with 4 blocks: 24 zmm accumulators); for each input block, tap and
//! input channel (lane) of the block, one input value is broadcast and multiply-added with the
//! tap's NB filter vectors. Every lane of every vector does useful work whatever the image size
//! (NCHW kernels vectorize along a row, so 7- and 14-wide rows waste lanes), and the filters of
//! one tap are read once per P pixels.
//!
//! - Bias: the accumulators' start. Residual and relu: added and applied in registers before the
//!   store; other activations run on each stored run while it is in L1 (epilogue.rs).
//! - Padding: the interior pixels of a row (every tap inside the image) run in tiles of P; the
//!   border pixels one by one with their taps clipped; kernel rows outside the image are clipped
//!   per output row. No padded copy of the input is made.
//! - Border pixels (tiles of fewer than 8 accumulators) split their lanes over two sets of
//!   accumulators, so 4 chains of dependent FMAs do not leave the FMA ports half idle.
//! - Cache: a unit is a band of output rows whose output (4 blocks) stays in L1
//!   (`UNIT_OUTPUT_FLOATS`); the input blocks are taken in chunks whose filters stay in L1 or L2
//!   (`chunk_filter_floats`), every row of the band reading them there, the tiles accumulating
//!   into the output between chunks. Measured (examples/cnn_convs.rs, one thread, loaded
//!   machine): ResNet-50's 3x3 512->512 at 7x7 went from 80-100 to 143-146 GFLOP per
//!   CPU-second when its 7 rows became one band (the filters read from L2 once, not 7 times).
//! - 1x1 stride-1 unpadded convolutions run their whole plane as one row: the 7x7 planes of
//!   ResNet-50's last stage make tiles of 6, not rows of 7 cut into 6 + 1.
//! - Threads: the units are the one-thread cut's (image, group of NB output blocks, band of rows,
//!   range of columns), each cut into parts (its rows, or its column tiles) where a pass has
//!   fewer than `PARTS_PER_THREAD` per thread (batch 1 at 14 and 7 px); the threads claim the
//!   parts in pieces of decreasing size (parallel::for_each_guided): the first pieces whole
//!   neighbouring units (same filters, next band), the last single parts, so a thread on a
//!   slower core takes fewer and neither waits long on the other.

use super::{blocks, Input, OutBlocks, BLOCK};
use crate::device::cpu::conv::engine::parallel_pays_for;
use crate::device::cpu::conv::epilogue::SliceEpilogue;
use crate::params::conv::Geometry;
use crate::params::unary::UnaryOp;
use crate::parallel::SendPtr;
use std::arch::x86_64::*;

/// Output blocks of one tile, at most.
const MAX_BLOCKS: usize = 4;
/// Floats of filters (one tile's output blocks, one chunk of input blocks, every tap) that a
/// chunk may hold where the L1 data cache is under 48 KiB: 256 KiB, a quarter of a 1 MiB L2. A
/// chunk was 32 KiB, sized for a 48 KiB L1; on a 32 KiB L1 (a Zen 4) those filters came from L2
/// anyway, and every chunk cost each tile a reload and a store of its accumulators and a cold
/// start of its filter streams, which the small planes (49 pixels: 9 tiles per chunk) paid most.
/// Measured there (examples/resnet_b1_convs, one process switching per round, one thread, CPU ms
/// per batch-1 pass, load 9): 7 px 1x1 5.63 -> 5.17, the 7 px 3x3's Winograd products 4.30 ->
/// 3.65, strided 3x3 7.89 -> 7.42, strided 1x1 6.76 -> 6.25, the 56, 28 and 14 px 1x1 level;
/// whole pass 56.2 -> 53.7 (-4.6%); 4x the chunk read level with 2x, and smaller chunks read
/// slower.
const CHUNK_FILTER_FLOATS_L2: usize = 64 * 1024;
/// The L1 data caches from which a chunk's filters stay in L1 (`chunk_filter_floats`: two thirds
/// of it, the rest for the tiles' input): on a 48 KiB L1 (a Xeon of the same VM, 2026-12-07) a
/// chunk of 32 KiB beat 256 KiB in every round (resnet_b1_convs, per-round switch, 9 rounds, one
/// thread, CPU ms per pass: ResNet-50's batch-1 shapes 42.4-43.7 -> 40.1-41.1, SqueezeNet's 1x1s
/// and its 13x13 3x3 2.54-2.72 -> 2.46-2.53; batch 8 on two threads, 5 rounds, 336.7-352.4 ->
/// 319.1-328.4; the whole ResNet-50 at batch 1, two threads, switched in one process, 12 rounds:
/// 63.9 -> 60.7 ms of CPU per inference, lower in 10); chunks of 16 and 48 KiB (a process each,
/// one thread) read between the two.
const L1_FOR_CHUNKS: usize = 48 * 1024;
/// Output floats of one unit (4 blocks x bands of rows x columns): 24 KiB, which stays in L1
/// while the chunks of input blocks accumulate into it.
const UNIT_OUTPUT_FLOATS: usize = 6 * 1024;
/// Floats of filters that stay in a 2 MiB L2 beside a band of input (`forward`'s loop order).
const L2_FLOATS: usize = 256 * 1024;
/// Output columns of one unit at most (a flattened 1x1 plane is one long row).
const MAX_UNIT_COLUMNS: usize = 96;
/// Parts wanted per thread (`parts_per_unit`): the last pieces the threads claim are single
/// parts, so a thread on a slower core (this VM's two change speed independently by 10-20%) or a
/// descheduled one holds the other up by at most one part, 1/16 of a pass on two threads, where
/// 4 units per thread claimed one by one left up to 1/8.
const PARTS_PER_THREAD: usize = 8;
const TAP_FLOATS: usize = BLOCK * BLOCK;

/// Pixels of one tile at most with `nb` output blocks: NB·P accumulators + NB filter vectors + one
/// broadcast fit the 32 zmm registers; with one or two blocks, longer tiles keep enough
/// independent FMAs in flight (FMA latency 4 x 2 ports).
const fn max_pixels(nb: usize) -> usize {
    match nb {
        4 => 6,
        3 => 8,
        _ => 12,
    }
}

/// The AVX-512 forward, super::forward's contract. Needs AVX-512F (`simd::level()`).
pub(super) fn forward(geo: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks) {
    forward_with(geo, x, w, bias, epilogue, y, into, None, false)
}

/// `forward` of an input in `input`'s layout (super::forward_plain_input's contract for
/// `Input::Plain`).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_from(geo: &Geometry, input: Input, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks) {
    if input == Input::Blocked {
        if let Some((pointwise, compact)) = subsampled(geo, x) {
            return run_plan(&pointwise, input, &compact, w, bias, epilogue, y, into, None, false);
        }
        if let Some((unpadded, copy)) = padded(geo, x) {
            return run_plan(&unpadded, input, &copy, w, bias, epilogue, y, into, None, false);
        }
    }
    run_plan(geo, input, x, w, bias, epilogue, y, into, None, false)
}

/// A 1x1 unpadded convolution of stride > 1 (ResNet-50's downsampling shortcuts) as a stride-1
/// pointwise one: the pixels it reads gathered first (reorder::subsample: a quarter of x at
/// stride 2, a few µs at batch 1) into a compact image, which `as_rows` then runs as one long row
/// of tiles, as the stride-1 1x1 convolutions run. The strided tiles read every other pixel of
/// every other row (a cache line in two or four fetched for nothing) and cut rows of 7, 14 or 28
/// into short tiles (4 + 3 at 7). Measured, ResNet-50's three, CPU ms summed, strided / gathered
/// (load 4.5-5, medians of 3-5 alternating rounds): batch 8 two threads 55.5 / 51.7, one thread
/// 58.6 / 52.5 (1024->2048 at 14: 80 -> 94 GFLOP per CPU-second); batch 1 6.1 / 6.0, 6.3 / 6.1.
/// None for other shapes, or when the compact image's memory cannot be had (the strided tiles
/// then give the same sums, in the same order).
fn subsampled(geo: &Geometry, x: &[f32]) -> Option<(Geometry, Vec<f32>)> {
    let strided_pointwise = geo.kernel == [1, 1] && geo.pad == [0, 0] && geo.stride != [1, 1] && geo.out_height > 0 && geo.out_width > 0;
    if !strided_pointwise {
        return None;
    }
    let cb = blocks(geo.channels);
    let len = geo.batch.checked_mul(cb)?.checked_mul(geo.out_height * geo.out_width * BLOCK)?;
    // SAFETY: subsample writes every float of y (each plane's every output pixel) and reads none.
    let compact = unsafe {
        crate::alloc::try_filled_by::<f32>("conv2dNchwc", len, |y| super::reorder::subsample(x, geo.batch, cb, [geo.height, geo.width], geo.stride, [geo.out_height, geo.out_width], y))
    };
    let pointwise = Geometry { height: geo.out_height, width: geo.out_width, stride: [1, 1], ..*geo };
    Some((pointwise, compact.ok()?))
}

/// A strided padded convolution of few output columns, a sixteenth or more of them on the border
/// (ResNet-50's 3x3/s2 512->512 at 14x14: 1 of 7; 256->256 at 28x28: 1 of 14), on a zero-padded
/// copy of its input (pad 0):
/// every pixel then runs in the row's tiles, where a border pixel ran alone, its taps clipped,
/// reading all of its filters (36 KiB per input block, from L2) for one pixel. The copy is small
/// next to the convolution (512 KiB at batch 1). Measured (load 6-7, one thread, medians of 3-5
/// alternating rounds), GFLOP per CPU-second, on the border tiles / on the copy: 512->512 at
/// 14x14 batch 1 82.5 / 91.7 (two threads 78.8 / 87.7), batch 8 75.1 / 84.6; the 14- and
/// 28-wide outputs of 256->256 and 128->128 (a fourteenth or less on the border) moved -3..+4,
/// within the noise, and stayed as they were. With chunks of 256 KiB of filters
/// (`CHUNK_FILTER_FLOATS_L2`) the 14-wide one pays (`resnet_b1_convs`, in-process switch, load
/// 6.6-7.7, CPU ms per call, border tiles / copy): 256->256 at 28x28 batch 1 one thread 2.43 /
/// 2.19, two threads 2.55 / 2.34, batch 8 19.6 / 19.2; the 28-wide 128->128 at 56x56 still does
/// not (2.33 / 2.24 on one thread, 2.45 / 2.46 on two, batch 8 19.3 / 19.9). Strided only: a
/// stride-1 convolution's border is Winograd's or a wide row's. None where the copy's memory cannot be had (the border tiles
/// give the same sums then).
fn padded(geo: &Geometry, x: &[f32]) -> Option<(Geometry, Vec<f32>)> {
    let border = geo.out_width - interior(geo).len();
    let applies = geo.stride != [1, 1] && geo.pad != [0, 0] && geo.kernel != [1, 1] && border * 16 >= geo.out_width;
    if !applies {
        return None;
    }
    let cb = blocks(geo.channels);
    let (h, w) = (geo.height + 2 * geo.pad[0], geo.width + 2 * geo.pad[1]);
    let len = geo.batch.checked_mul(cb)?.checked_mul(h.checked_mul(w)?.checked_mul(BLOCK)?)?;
    // SAFETY: pad writes every float of y (each plane's every pixel, the zeros included) and
    // reads none.
    let copy = unsafe { crate::alloc::try_filled_by::<f32>("conv2dNchwc", len, |y| super::reorder::pad(x, geo.batch, cb, [geo.height, geo.width], geo.pad, y)) };
    let unpadded = Geometry { height: h, width: w, pad: [0, 0], ..*geo };
    Some((unpadded, copy.ok()?))
}

/// `forward` with the units' order forced (bands outer or not) where `order` is given (the tests
/// run both), and on the calling thread alone when `serial` (winograd.rs's 1x1 products, run by
/// a worker that is itself one of the threads).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_with(geo: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks, order: Option<bool>, serial: bool) {
    run_plan(geo, Input::Blocked, x, w, bias, epilogue, y, into, order, serial)
}

/// `forward` cut for `threads` threads (`parts_per_unit`) whatever the pool has and however
/// small the convolution: the tests' check of the cut for 1, 2, 3 and more threads.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_cut_for(geo: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks, threads: usize) {
    run_cut(geo, Input::Blocked, x, w, bias, epilogue, y, into, None, threads)
}

/// `run_cut` on the pool's threads where the convolution pays for them (one thread when `serial`).
#[allow(clippy::too_many_arguments)]
fn run_plan(geo: &Geometry, input: Input, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks, order: Option<bool>, serial: bool) {
    let threads = if !serial && parallel_pays_for(geo.macs()) { crate::parallel::num_threads() } else { 1 };
    run_cut(geo, input, x, w, bias, epilogue, y, into, order, threads)
}

/// The forward cut into units (the one-thread cut: bands of rows and column ranges whose output
/// stays in L1), each unit into parts for `threads` threads, the parts claimed by the threads in
/// pieces of decreasing size (parallel::for_each_guided).
#[allow(clippy::too_many_arguments)]
fn run_cut(geo: &Geometry, input: Input, x: &[f32], w: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, y: &mut [f32], into: OutBlocks, order: Option<bool>, threads: usize) {
    let g = as_rows(geo);
    let (cb, ob) = (blocks(g.channels), blocks(g.out_channels));
    let groups = ob.div_ceil(MAX_BLOCKS);
    let taps = g.kernel[0] * g.kernel[1];
    let chunk = chunk_blocks(taps).min(cb.max(1));
    // Bands of rows whose output stays in L1 (so each chunk's filters serve every row of the
    // band: a 7x7 image is one band, not 7 reads of the filters from L2), then column ranges
    // for a row too long for L1 (a flattened 1x1 plane): the units, each run as one piece.
    let row_floats = MAX_BLOCKS * g.out_width.min(MAX_UNIT_COLUMNS) * BLOCK;
    let band = (UNIT_OUTPUT_FLOATS / row_floats).clamp(1, g.out_height.max(1));
    let bands = g.out_height.div_ceil(band);
    let most = max_pixels(MAX_BLOCKS);
    let col_chunks = g.out_width.div_ceil(MAX_UNIT_COLUMNS).max(1);
    let columns = g.out_width.div_ceil(col_chunks).next_multiple_of(most).max(1);
    let col_chunks = g.out_width.div_ceil(columns).max(1);
    let units = g.batch * groups * bands * col_chunks;
    let parts = parts_per_unit(units, threads, band, columns.div_ceil(most));
    // Which loop is outer over an image's units: groups (the image is read once per group, each
    // group's filters reused by every band) or bands (each band of input read once, by every
    // group in turn, the filters read once per band unless they fit in L2): the smaller traffic.
    let image_floats = cb * g.height * g.width * BLOCK;
    let filter_floats = ob * cb * taps * TAP_FLOATS;
    let groups_outer = groups * image_floats + filter_floats;
    let bands_outer = image_floats + if filter_floats <= L2_FLOATS { filter_floats } else { bands * col_chunks * filter_floats };
    let bands_outer = order.unwrap_or(bands_outer < groups_outer);
    let layout = InputLayout::of(input, &g);
    let plan = Plan { g, cb, ob, groups, chunk, band, bands, columns, col_chunks, parts, bands_outer, into, layout };
    let relu = matches!(epilogue.activation, Some(a) if a.op == UnaryOp::Relu);
    let after = SliceEpilogue { residual: None, activation: if relu { None } else { epilogue.activation } };
    let residual = epilogue.residual.map(|r| SendPtr(r.as_ptr() as *mut f32));
    let (x, w, out) = (SendPtr(x.as_ptr() as *mut f32), SendPtr(w.as_ptr() as *mut f32), SendPtr(y.as_mut_ptr()));
    let bias = bias.map(|b| SendPtr(b.as_ptr() as *mut f32));
    let run = |start: usize, end: usize| {
        // The piece's parts, each unit's run of them as one rectangle: the pieces claimed first
        // are whole units, run as the one-thread cut runs them.
        let mut part = start;
        while part < end {
            let (unit, first) = (part / parts, part % parts);
            let last = (end - unit * parts).min(parts);
            let finish = Finish { residual: residual.as_ref().map(|r| r.ptr() as *const f32), relu, after };
            // SAFETY: AVX-512F is present (super::forward asks simd::level()); the lengths were
            // checked by super::forward; each part writes its own output pixels of its own blocks.
            unsafe { plan.run_unit(unit, first..last, x.ptr(), w.ptr(), bias.as_ref().map(|b| b.ptr() as *const f32), finish, out.ptr()) };
            part = unit * parts + last;
        }
    };
    crate::parallel::for_each_guided(units * parts, 1, threads, run);
}

/// Input blocks of one chunk for a kernel of `taps` taps (`chunk_filter_floats`), at least 1.
pub(super) fn chunk_blocks(taps: usize) -> usize {
    (chunk_filter_floats() / (MAX_BLOCKS * taps * TAP_FLOATS)).max(1)
}

/// Floats of filters one chunk holds: two thirds of an L1 data cache of `L1_FOR_CHUNKS` or more
/// (the filters then stay in L1 while the chunk's tiles read them), else CHUNK_FILTER_FLOATS_L2.
fn chunk_filter_floats() -> usize {
    match crate::cpu_cache::l1_data_bytes() {
        Some(bytes) if bytes >= L1_FOR_CHUNKS => bytes * 2 / 3 / std::mem::size_of::<f32>(),
        _ => CHUNK_FILTER_FLOATS_L2,
    }
}

/// Parts to cut each of `units` units into so that `threads` threads have about
/// `PARTS_PER_THREAD` parts each to claim (at batch 1 a convolution at 14 or 7 px has 4-32 units
/// of 4 output blocks): a unit's rows where its band has more than one (`band`), else its
/// column tiles (`tiles`). One thread: 1 (the units as they are). Parts of one unit claimed in
/// one piece run as one rectangle, so only the last, small pieces read a unit's filters for a
/// part of its pixels.
fn parts_per_unit(units: usize, threads: usize, band: usize, tiles: usize) -> usize {
    if threads <= 1 {
        return 1;
    }
    let extent = if band > 1 { band } else { tiles };
    (threads * PARTS_PER_THREAD).div_ceil(units.max(1)).clamp(1, extent.max(1))
}

/// A 1x1 stride-1 unpadded convolution as one row of height·width pixels (same floats, as the
/// pixels of a plane are consecutive in NCHWc); others as they are.
fn as_rows(geo: &Geometry) -> Geometry {
    let pointwise = geo.kernel == [1, 1] && geo.stride == [1, 1] && geo.pad == [0, 0] && geo.out_height == geo.height && geo.out_width == geo.width;
    if pointwise {
        let plane = geo.height * geo.width;
        Geometry { height: 1, width: plane, out_height: 1, out_width: plane, ..*geo }
    } else {
        *geo
    }
}

/// Where an input value sits: channel `lane` of block c of pixel (ih, iw) of image n is
/// x[n·image + c·H·W·16 + lane·lane_stride + (ih·W + iw)·pixel] (a block of 16 NCHW channels is
/// 16 planes: H·W·16 floats in either layout).
#[derive(Clone, Copy)]
struct InputLayout {
    image: usize,
    lane_stride: usize,
    pixel: usize,
    /// Input channels of a block that hold values: 16, or C of a plain input (its one block).
    lanes: usize,
}

impl InputLayout {
    fn of(input: Input, g: &Geometry) -> Self {
        let plane = g.height * g.width;
        match input {
            Input::Blocked => InputLayout { image: blocks(g.channels) * plane * BLOCK, lane_stride: 1, pixel: BLOCK, lanes: BLOCK },
            Input::Plain => InputLayout { image: g.channels * plane, lane_stride: plane, pixel: 1, lanes: g.channels },
        }
    }
}

/// The cut of one pass into units and chunks (`forward`).
struct Plan {
    g: Geometry,
    cb: usize,
    ob: usize,
    groups: usize,
    /// Input blocks per chunk.
    chunk: usize,
    /// Output rows per unit, and units per image and group.
    band: usize,
    bands: usize,
    /// Units in (image, band, group, columns) order rather than (image, group, band, columns).
    bands_outer: bool,
    /// Output columns per unit, and units per output row.
    columns: usize,
    col_chunks: usize,
    /// Parts each unit is cut into for the threads (`parts_per_unit`): its rows, or its column
    /// tiles when it has one row.
    parts: usize,
    /// Where the output blocks go in y.
    into: OutBlocks,
    layout: InputLayout,
}

/// What a tile does after its last chunk: add the residual (at the output's offsets), apply relu
/// in registers, then `after` (other activations) on the stored runs.
#[derive(Clone, Copy)]
struct Finish<'a> {
    residual: Option<*const f32>,
    relu: bool,
    after: SliceEpilogue<'a>,
}

/// Where a tile's accumulators start.
#[derive(Clone, Copy)]
enum Init {
    Bias(*const f32),
    Zero,
    /// The partial sums the previous chunk stored.
    Output,
}

/// One tile's operands: NB output blocks x P pixels of one output row, over `cblocks` input blocks.
#[derive(Clone, Copy)]
struct Tile<'a> {
    /// Image n, the chunk's first input block, pixel (0, 0).
    x: *const f32,
    /// Floats between input blocks: H·W·16.
    x_block: usize,
    /// Floats between input rows (W·pixel), between an input pixel's channels, and the
    /// channels of a block that hold values (InputLayout).
    x_row: usize,
    x_lane: usize,
    lanes: usize,
    cblocks: usize,
    /// Filters of the tile's first output block, the chunk's first input block, tap (0, 0).
    w: *const f32,
    /// Floats between output blocks' filters (blocks(C)·KH·KW·256), between input blocks' (KH·KW·256).
    w_block: usize,
    w_cblock: usize,
    kw: usize,
    /// Kernel rows and columns inside the image (clipped at the borders).
    ki: (usize, usize),
    kj: (usize, usize),
    /// Input row of kernel row 0, and input column of pixel 0 at kernel column 0 (may be < 0:
    /// those taps are clipped off).
    ih0: isize,
    iw0: isize,
    dilation: [usize; 2],
    /// Floats between input pixels, and between the input pixels of consecutive output pixels
    /// (stride·pixel).
    x_pixel: usize,
    x_step: usize,
    /// Output (and residual) offset of the tile's first block and pixel, from `out`.
    at: usize,
    /// Floats between output blocks: OH·OW·16.
    y_block: usize,
    init: Init,
    finish: Option<Finish<'a>>,
    /// Tiles of P pixels side by side that one call runs (a row's interior): ResNet-50's 1x1
    /// 64->64 at 56x56 (4 input blocks: 1536 FMAs a tile) went from 118-177 (median 154) to
    /// 132-198 (median 187) GFLOP per CPU-second, five alternating pairs, one thread, loaded;
    /// SqueezeNet's 16->64 (one block) level at 151 / 150.
    repeat: usize,
}

impl Plan {
    /// SAFETY: AVX-512F; x, w, bias and residual hold super::forward's lengths for `self.g`; out
    /// is valid for writes of y, these parts' pixels written by no one else.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_unit(&self, unit: usize, parts: std::ops::Range<usize>, x: *const f32, w: *const f32, bias: Option<*const f32>, finish: Finish, out: *mut f32) {
        let g = &self.g;
        let col_chunk = unit % self.col_chunks;
        let rest = unit / self.col_chunks;
        let (band, group) = match self.bands_outer {
            true => (rest / self.groups % self.bands, rest % self.groups),
            false => (rest % self.bands, rest / self.bands % self.groups),
        };
        let n = rest / self.bands / self.groups;
        let first_block = group * MAX_BLOCKS;
        let nb = MAX_BLOCKS.min(self.ob - first_block);
        let taps = g.kernel[0] * g.kernel[1];
        let in_plane = g.height * g.width;
        let out_plane = g.out_height * g.out_width;
        let rows = band * self.band..((band + 1) * self.band).min(g.out_height);
        let columns = col_chunk * self.columns..((col_chunk + 1) * self.columns).min(g.out_width);
        let (rows, columns) = match self.band > 1 {
            true => (part_of(rows, 1, self.parts, parts), columns),
            false => (rows, part_of(columns, max_pixels(MAX_BLOCKS), self.parts, parts)),
        };
        let inside = interior(g);
        let start = inside.start.clamp(columns.start, columns.end);
        let interior = start..inside.end.clamp(start, columns.end);
        let (most, len) = (max_pixels(nb), interior.len());
        let mut c0 = 0;
        while c0 < self.cb.max(1) {
            let cblocks = self.chunk.min(self.cb - c0.min(self.cb));
            let last = c0 + cblocks >= self.cb;
            let init = match (c0, bias) {
                (0, Some(b)) => Init::Bias(b.add(first_block * BLOCK)),
                (0, None) => Init::Zero,
                _ => Init::Output,
            };
            for oh in rows.clone() {
                let ki = clip(oh, g.stride[0], g.dilation[0], g.pad[0], g.height, g.kernel[0]);
                let tile_at = |ow: usize, kj: (usize, usize)| Tile {
                    x: x.add(n * self.layout.image + c0 * in_plane * BLOCK),
                    x_block: in_plane * BLOCK,
                    x_row: g.width * self.layout.pixel,
                    x_lane: self.layout.lane_stride,
                    lanes: self.layout.lanes,
                    cblocks,
                    w: w.add((first_block * self.cb + c0) * taps * TAP_FLOATS),
                    w_block: self.cb * taps * TAP_FLOATS,
                    w_cblock: taps * TAP_FLOATS,
                    kw: g.kernel[1],
                    ki,
                    kj,
                    ih0: (oh * g.stride[0]) as isize - g.pad[0] as isize,
                    iw0: (ow * g.stride[1]) as isize - g.pad[1] as isize,
                    dilation: g.dilation,
                    x_pixel: self.layout.pixel,
                    x_step: g.stride[1] * self.layout.pixel,
                    at: ((n * self.into.per_image + self.into.first + first_block) * out_plane + oh * g.out_width + ow) * BLOCK,
                    y_block: out_plane * BLOCK,
                    init,
                    finish: last.then_some(finish),
                    repeat: 1,
                };
                let border = |ow: usize| clip(ow, g.stride[1], g.dilation[1], g.pad[1], g.width, g.kernel[1]);
                // Border pixels one at a time, their taps clipped; the interior in balanced tiles.
                for ow in columns.start..interior.start {
                    tile(nb, 1, &tile_at(ow, border(ow)), out);
                }
                // Balanced: `longer` tiles of p + 1 pixels, then the others of p.
                let count = len.div_ceil(most);
                if count > 0 {
                    let (p, longer) = (len / count, len % count);
                    let full = (0, g.kernel[1]);
                    if longer > 0 {
                        tile(nb, p + 1, &Tile { repeat: longer, ..tile_at(interior.start, full) }, out);
                    }
                    tile(nb, p, &Tile { repeat: count - longer, ..tile_at(interior.start + longer * (p + 1), full) }, out);
                }
                for ow in interior.end..columns.end {
                    tile(nb, 1, &tile_at(ow, border(ow)), out);
                }
            }
            c0 += cblocks.max(1);
        }
    }
}

/// Parts `parts` of `count` of `range` cut in steps of `step` (the last step may be short): part
/// i starts at step ⌊i·steps/count⌋.
fn part_of(range: std::ops::Range<usize>, step: usize, count: usize, parts: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let steps = range.len().div_ceil(step);
    let at = |part: usize| (range.start + part * steps / count * step).min(range.end);
    at(parts.start)..at(parts.end)
}

/// The kernel taps k in lo..hi of output position `o` that fall inside an input of `size`.
fn clip(o: usize, stride: usize, dilation: usize, pad: usize, size: usize, kernel: usize) -> (usize, usize) {
    let start = o * stride;
    let lo = pad.saturating_sub(start).div_ceil(dilation).min(kernel);
    let hi = if size + pad > start { ((size + pad - start - 1) / dilation + 1).min(kernel) } else { 0 };
    (lo, hi.max(lo))
}

/// The output columns whose every kernel column falls inside the input.
fn interior(g: &Geometry) -> std::ops::Range<usize> {
    let (s, d, pad, k) = (g.stride[1], g.dilation[1], g.pad[1], g.kernel[1]);
    let lo = pad.div_ceil(s).min(g.out_width);
    let reach = (k - 1) * d;
    let hi = if g.width + pad > reach { ((g.width + pad - reach - 1) / s + 1).min(g.out_width) } else { 0 };
    lo..hi.max(lo)
}

/// Runs the tile of `nb` blocks x `p` pixels (nb <= 4, p <= max_pixels(nb)): one compiled
/// kernel per size, its loops over blocks and pixels unrolled onto registers.
///
/// SAFETY: as `tile_kernel`.
unsafe fn tile(nb: usize, p: usize, t: &Tile, out: *mut f32) {
    macro_rules! sizes {
        ($nb:literal: $($p:literal)*) => {
            match p {
                $($p => tile_kernel::<$nb, $p>(t, out),)*
                _ => unreachable!("nchwc: a tile of {} blocks x {p} pixels", $nb),
            }
        };
    }
    match nb {
        4 => sizes!(4: 1 2 3 4 5 6),
        3 => sizes!(3: 1 2 3 4 5 6 7 8),
        2 => sizes!(2: 1 2 3 4 5 6 7 8 9 10 11 12),
        1 => sizes!(1: 1 2 3 4 5 6 7 8 9 10 11 12),
        _ => unreachable!("nchwc: {nb} output blocks in a tile"),
    }
}

/// For each of the `t.repeat` tiles side by side: out[block b, pixel j] = init + Σ over the
/// chunk's input blocks, the tile's taps and the 16 lanes of x(lane, tap's pixel of j) ·
/// filter(b, tap, lane), then the finish if any.
///
/// SAFETY: AVX-512F; every tap (ki, kj) in the tile's ranges reads inside x for each of the
/// repeat·P pixels; the filters, bias and residual hold the blocks read; out + t.at holds the
/// tiles' NB blocks x repeat·P pixels, written by no one else during the call.
#[target_feature(enable = "avx512f")]
unsafe fn tile_kernel<const NB: usize, const P: usize>(t: &Tile, out: *mut f32) {
    let stride = (t.x_step / t.x_pixel) as isize;
    for r in 0..t.repeat {
        let shifted = Tile { iw0: t.iw0 + (r * P) as isize * stride, at: t.at + r * P * BLOCK, ..*t };
        one_tile::<NB, P>(&shifted, out);
    }
}

/// One tile of `tile_kernel`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn one_tile<const NB: usize, const P: usize>(t: &Tile, out: *mut f32) {
    let y = out.add(t.at);
    let split = NB * P < 8;
    let mut acc = [[_mm512_setzero_ps(); P]; NB];
    let mut extra = [[_mm512_setzero_ps(); P]; NB];
    match t.init {
        Init::Bias(b) => {
            for (blk, acc) in acc.iter_mut().enumerate() {
                *acc = [_mm512_loadu_ps(b.add(blk * BLOCK)); P];
            }
        }
        Init::Zero => {}
        Init::Output => {
            for (blk, acc) in acc.iter_mut().enumerate() {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(y.add(blk * t.y_block + j * BLOCK));
                }
            }
        }
    }
    // The lines the tile will store (unless it loaded them just now) and the residual it will
    // add, fetched while its multiply-adds run: at batch 8 a 56x56 block's output and residual
    // (25 MB each for 64->256) are far from L1 by then, and the stores and loads waited on memory
    // one tile at a time. Measured (nchwc::forward alone, an env switch read once, two threads,
    // load 6, medians of 3 alternating runs), GFLOP per CPU-second without / with: batch 8,
    // ResNet-50's block-closing 1x1 + residual + relu 64->256 at 56 67 / 81, 128->512 at 28
    // 77 / 86, 256->1024 at 14 85 / 98, 512->2048 at 7 93 / 95; batch 1 within the noise
    // (90 / 90, 87 / 96, 99 / 101).
    if !matches!(t.init, Init::Output) {
        for blk in 0..NB {
            for j in 0..P {
                _mm_prefetch::<_MM_HINT_ET0>(y.add(blk * t.y_block + j * BLOCK) as *const i8);
            }
        }
    }
    if let Some(Finish { residual: Some(r), .. }) = t.finish {
        for blk in 0..NB {
            for j in 0..P {
                _mm_prefetch::<_MM_HINT_T0>(r.add(t.at + blk * t.y_block + j * BLOCK) as *const i8);
            }
        }
    }
    // The layout chosen once per tile, not per tap: the blocked loop keeps its constants.
    match t.x_lane {
        1 => accumulate::<NB, P, false>(t, &mut acc, &mut extra, split),
        _ => accumulate::<NB, P, true>(t, &mut acc, &mut extra, split),
    }
    if split {
        for (acc, extra) in acc.iter_mut().zip(&extra) {
            for (a, e) in acc.iter_mut().zip(extra) {
                *a = _mm512_add_ps(*a, *e);
            }
        }
    }
    let Some(finish) = t.finish else {
        for (blk, acc) in acc.iter().enumerate() {
            for (j, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(y.add(blk * t.y_block + j * BLOCK), a);
            }
        }
        return;
    };
    for (blk, acc) in acc.iter().enumerate() {
        for (j, &a) in acc.iter().enumerate() {
            let at = blk * t.y_block + j * BLOCK;
            let a = match finish.residual {
                Some(r) => _mm512_add_ps(a, _mm512_loadu_ps(r.add(t.at + at))),
                None => a,
            };
            // max(0, a), not max(a, 0): MAXPS returns its second operand when one is NaN, and a NaN
            // must come through as the scalar relu lets it.
            let a = if finish.relu { _mm512_max_ps(_mm512_setzero_ps(), a) } else { a };
            _mm512_storeu_ps(y.add(at), a);
        }
    }
    finish.after.apply(y, 0, NB, t.y_block, P * BLOCK);
}

/// The tile's sums over its chunk of input blocks and its taps into `acc` (odd lanes into `extra`
/// when `split`): x blocked (a pixel's 16 lanes side by side), or `PLAIN` (t.lanes channels, each
/// t.x_lane floats apart, pixels t.x_pixel apart).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn accumulate<const NB: usize, const P: usize, const PLAIN: bool>(t: &Tile, acc: &mut [[__m512; P]; NB], extra: &mut [[__m512; P]; NB], split: bool) {
    let pixel = if PLAIN { t.x_pixel } else { BLOCK };
    for c in 0..t.cblocks {
        let xc = t.x.add(c * t.x_block);
        let wc = t.w.add(c * t.w_cblock);
        for ki in t.ki.0..t.ki.1 {
            let ih = (t.ih0 + (ki * t.dilation[0]) as isize) as usize;
            let x_row = xc.add(ih * t.x_row);
            for kj in t.kj.0..t.kj.1 {
                let x_tap = x_row.offset((t.iw0 + (kj * t.dilation[1]) as isize) * pixel as isize);
                let w_tap = wc.add((ki * t.kw + kj) * TAP_FLOATS);
                // Odd lanes into a second set of accumulators when the tile has fewer than
                // 8 (a border pixel: 4 chains of dependent FMAs would run at half the FMA
                // ports' rate, their 4-cycle latency unhidden); summed before the store.
                if PLAIN {
                    // Only the input's C channels (a stem's 3 colours), each a plane away.
                    for lane in 0..t.lanes {
                        let set = if split && lane % 2 == 1 { &mut *extra } else { &mut *acc };
                        step::<NB, P>(set, w_tap.add(lane * BLOCK), t.w_block, x_tap.add(lane * t.x_lane), t.x_step);
                    }
                } else if NB == 2 && !split {
                    // One lane at a time: two lanes side by side (the loop below) kept a 2 x 12
                    // tile's 24 broadcasts beside its 24 accumulators, which the compiler spilled
                    // to the stack (SqueezeNet's squeezes into 32 channels ran at 71-77 GFLOP per
                    // CPU-second, the other tiles at 105-110; `cnn_convs`, one thread).
                    for lane in 0..BLOCK {
                        step::<NB, P>(acc, w_tap.add(lane * BLOCK), t.w_block, x_tap.add(lane), t.x_step);
                    }
                } else {
                    for lane in (0..BLOCK).step_by(2) {
                        step::<NB, P>(acc, w_tap.add(lane * BLOCK), t.w_block, x_tap.add(lane), t.x_step);
                        let odd = if split { &mut *extra } else { &mut *acc };
                        step::<NB, P>(odd, w_tap.add((lane + 1) * BLOCK), t.w_block, x_tap.add(lane + 1), t.x_step);
                    }
                }
            }
        }
    }
}

/// One input lane of one tap: acc[b][j] += x[j·x_step] · w[b·w_block..][..16].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn step<const NB: usize, const P: usize>(acc: &mut [[__m512; P]; NB], w: *const f32, w_block: usize, x: *const f32, x_step: usize) {
    let mut f = [_mm512_setzero_ps(); NB];
    for (blk, f) in f.iter_mut().enumerate() {
        *f = _mm512_loadu_ps(w.add(blk * w_block));
    }
    for j in 0..P {
        let v = _mm512_set1_ps(*x.add(j * x_step));
        for blk in 0..NB {
            acc[blk][j] = _mm512_fmadd_ps(v, f[blk], acc[blk][j]);
        }
    }
}
