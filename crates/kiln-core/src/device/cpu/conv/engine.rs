//! The three passes every convolution op is made of, each im2col + GEMM per band of output rows:
//!
//! - `forward`:      out[n]  = W · im2col(x[n])                (+ bias)
//! - `input_grad`:   dx[n]   = col2im(Wᵀ · dy[n])             (+ bias: conv-transpose's forward)
//! - `weight_grad`:  dW      = Σₙ dy[n] · im2col(x[n])ᵀ
//!
//! A conv-transpose is the input gradient of the convolution it transposes, so conv2d and
//! convTranspose2d both run on these three (see conv.rs). Why im2col + GEMM and not a direct
//! kernel: `cargo run --release -p kiln-core --example conv_choice` measures both.
//!
//! Memory stays bounded: the im2col matrix is built per band of output rows, at most
//! `BAND_FLOATS` per worker (one output row more if a single row is larger), never per batch.
//! A pointwise (1x1) convolution needs no im2col, but is banded too: its GEMM reads a band of
//! input rows and writes the band of output rows that the bias fill and the fused activation
//! touch, so the three stay in cache (see `Plan::new`).
//! Work is split over (image, band) units across threads; with fewer units than threads, the
//! forward pass of a pointwise convolution cuts each unit's filters into ranges of output
//! channels, one GEMM per range on one thread (batch 1 at 14x14 and 7x7 is one band); other
//! passes run the units one after another, each GEMM on every thread. A pass too small to pay
//! for waking the thread pool runs on the calling thread (`Plan::parallel`).

use crate::params::conv::Geometry;
use super::epilogue::SliceEpilogue;
use super::im2col::{col2im_add, im2col};
use crate::error::{KilnError, Result};
use crate::parallel::{self, RegionLock, SendPtr};
use crate::alloc::try_written;
use super::Slot;
use crate::storage::{try_zeroed, Scratch};
use crate::device::cpu::gemm_call::Parallelism;
use std::ops::Range;

/// Floats of one worker's im2col band: 1 MiB, so the band plus the GEMM's packed panels stay in
/// a 2 MiB L2. Measured on 64-channel 32x32 images (examples/conv_choice.rs with this constant
/// changed): 1 << 16 ran the same, 1 << 20 (a whole image per band) halved the weight gradient.
const BAND_FLOATS: usize = 1 << 18;

/// Below this many multiply-adds a GEMM stays on one thread (as in matmul.rs), and so does a
/// whole convolution pass (`Plan::parallel`): such a pass takes some 10-20 µs on one core, about
/// what waking a sleeping pool thread costs on an idle machine (and far less than it can cost on
/// a loaded one).
const MIN_PARALLEL_MACS: usize = 96 * 96 * 96;

/// Output channels of a forward split are a multiple of this: whole register tiles of the GEMM.
const SPLIT_ROWS: usize = 16;

/// A read-only strided matrix inside a slice.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Mat<'a> {
        Mat { data, rows, cols, row_stride, col_stride: 1 }
    }
    /// The transpose, as swapped strides (no copy).
    fn t(self) -> Mat<'a> {
        Mat { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// dst = a · b, or dst += a · b with `accumulate`. dst has a.rows rows of b.cols at row stride
/// `dst_stride`, unit column stride.
///
/// SAFETY: dst must be valid for those writes, and no one else may touch them during the call.
pub(crate) unsafe fn gemm(dst: *mut f32, dst_stride: usize, accumulate: bool, a: Mat, b: Mat, parallelism: Parallelism) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(b.rows == k && a.fits() && b.fits(), "conv: GEMM operands out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                std::slice::from_raw_parts_mut(dst.add(r * dst_stride), n).fill(0.0);
            }
        }
        return;
    }
    let parallelism = if m * n * k >= MIN_PARALLEL_MACS { parallelism } else { Parallelism::None };
    crate::device::cpu::gemm_call::gemm(
        m, n, k,
        dst, dst_stride as isize, 1, accumulate,
        a.data.as_ptr(), a.row_stride as isize, a.col_stride as isize,
        b.data.as_ptr(), b.row_stride as isize, b.col_stride as isize,
        parallelism,
    );
}

/// How a pass is cut: each image's output rows in `bands` bands of about equal height, run on
/// the thread pool or, for a small pass, on the calling thread; the forward pass also cuts each
/// group's filters in `splits` ranges of `split_rows` output channels.
struct Plan {
    geo: Geometry,
    band: usize,
    bands: usize,
    parallel: bool,
    splits: usize,
    split_rows: usize,
}

impl Plan {
    fn new(geo: &Geometry) -> Plan {
        let g = *geo;
        // Floats a band holds per output row: its im2col rows (for a pointwise convolution, the
        // input rows its GEMM reads in place) and the output rows the GEMM writes, so the bias
        // fill, the GEMM and the fused activation all find the band in cache. Counting im2col
        // alone left pointwise convolutions unbanded (a whole image's output written three
        // times, out of cache on ResNet-50's 56x56x256 layers) and made the bands of few-channel
        // convolutions (SqueezeNet's first: 27 im2col rows, 64 output rows) overflow L2.
        let per_row = (g.channels * g.kernel[0] * g.kernel[1] + g.out_channels) * g.out_width;
        let bands = if g.out_height == 0 { 1 } else { (g.out_height * per_row).div_ceil(BAND_FLOATS).clamp(1, g.out_height) };
        // Recount after rounding the height up, so no band is empty (5 rows in 4 bands of 2 is 3).
        let band = g.out_height.div_ceil(bands).max(1);
        let bands = g.out_height.div_ceil(band).max(1);
        let parallel = parallel_pays(&g);
        // Fewer (image, band) units than threads (batch 1 at 14x14 and 7x7: one band): each
        // thread takes a range of the filters, its GEMM on one thread, rather than one GEMM
        // split by the GEMM over every thread. Pointwise only: every range would build the
        // unit's im2col again (ResNet-50's 3x3 stride-2 512->512 at batch 1: 89-93 against
        // 103-110 GFLOP per CPU-second, `cnn_convs`).
        let threads = if parallel { crate::parallel::num_threads() } else { 1 };
        let (units, cout) = ((g.batch * bands).max(1), g.group_out_channels());
        let wanted = if units < threads && g.is_pointwise() { threads.div_ceil(units) } else { 1 };
        let split_rows = cout.div_ceil(wanted).next_multiple_of(SPLIT_ROWS).min(cout).max(1);
        Plan { geo: g, band, bands, parallel, splits: cout.div_ceil(split_rows).max(1), split_rows }
    }

    /// The output channels of a group that forward split `split` computes.
    fn split_channels(&self, split: usize) -> Range<usize> {
        let cout = self.geo.group_out_channels();
        (split * self.split_rows).min(cout)..((split + 1) * self.split_rows).min(cout)
    }

    /// run_units over this plan's `units`, on the calling thread alone when the pass is small.
    fn run(&self, op: &str, units: usize, scratch_len: usize, work: impl Fn(usize, &mut [f32], Parallelism) + Sync + Send) -> Result<Vec<Scratch>> {
        run_units_on(op, units, self.parallel, scratch_len, work)
    }

    fn rows(&self, band: usize) -> Range<usize> {
        band * self.band..((band + 1) * self.band).min(self.geo.out_height)
    }

    /// Floats of one im2col band (none for pointwise convolutions, which read the image).
    fn col_len(&self) -> usize {
        let g = &self.geo;
        if g.is_pointwise() {
            0
        } else {
            g.channels * g.kernel[0] * g.kernel[1] * self.band * g.out_width
        }
    }

    /// The im2col matrix of `rows` of image `image` ([channels·kh·kw, rows·out_width]), built in
    /// `col`; for a pointwise convolution, the image itself from the band's first row (its
    /// channels stay height·width apart).
    fn columns<'a>(&self, image: &'a [f32], rows: Range<usize>, col: &'a mut [f32]) -> &'a [f32] {
        if self.geo.is_pointwise() {
            &image[rows.start * self.geo.width..]
        } else {
            im2col(&self.geo, image, rows, col);
            col
        }
    }
}

/// Runs `work(unit, scratch, gemm parallelism)` for every unit in 0..units and returns the
/// scratch buffers (zeroed at first, `scratch_len` floats each), so per-worker accumulators
/// can be summed. Units are handed out one at a time (rayon's work stealing), not in fixed
/// shares: on a shared machine a descheduled worker then delays the call by one unit, not by
/// half the batch. A unit takes a buffer from a pool of one per thread and puts it back.
/// The buffers are `Scratch`, so `kiln.peakMemory()` sees a convolution's working memory.
/// Its callers are the AVX-512 kernels (direct.rs, few_channels.rs), built for x86-64 only.
/// On the calling thread alone unless a pass of `macs` multiply-adds `parallel_pays_for`.
#[cfg(target_arch = "x86_64")]
pub(super) fn run_units(op: &str, macs: usize, units: usize, scratch_len: usize, work: impl Fn(usize, &mut [f32], Parallelism) + Sync + Send) -> Result<Vec<Scratch>> {
    run_units_on(op, units, parallel_pays_for(macs), scratch_len, work)
}

/// Whether a convolution pass is large enough to pay for waking the thread pool: the one rule
/// every CPU convolution kernel asks (this file's passes, pointwise.rs, direct.rs,
/// few_channels*.rs, winograd.rs).
pub(super) fn parallel_pays(g: &Geometry) -> bool {
    parallel_pays_for(g.macs())
}

/// `parallel_pays` for a pass of `macs` multiply-adds. `KILN_CONV_PARALLEL_MACS=N` moves the
/// threshold for a measurement (bench/onnx-op-profile.mjs per convolution, CPU and wall, one
/// build); MIN_PARALLEL_MACS otherwise.
pub(super) fn parallel_pays_for(macs: usize) -> bool {
    static THRESHOLD: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    macs >= *THRESHOLD.get_or_init(|| std::env::var("KILN_CONV_PARALLEL_MACS").ok().and_then(|v| v.parse().ok()).unwrap_or(MIN_PARALLEL_MACS))
}

/// run_units, all on the calling thread unless `parallel`.
pub(super) fn run_units_on(op: &str, units: usize, parallel: bool, scratch_len: usize, work: impl Fn(usize, &mut [f32], Parallelism) + Sync + Send) -> Result<Vec<Scratch>> {
    run_units_from(op, units, parallel, scratch_len, Scratch::zeroed, work)
}

/// run_units_on for work that writes every float of its scratch before it reads it (winograd.rs's
/// V and M): the buffers are not zeroed, so the first touch of each is the worker's own store.
/// Zeroed by the caller before the region, SqueezeNet's batch-1 Winograd scratch (0.6-1 MB per
/// thread and call, 8 calls) was some 11 MB of memset per inference, on the calling thread alone
/// while the other waited, leaving the worker's buffer in the caller's cache.
///
/// # Safety
/// `work` writes each float of its scratch before it reads it.
#[cfg(target_arch = "x86_64")] // its one caller, the NCHWc Winograd, is AVX-512 only
pub(super) unsafe fn run_units_on_unwritten(op: &str, units: usize, parallel: bool, scratch_len: usize, work: impl Fn(usize, &mut [f32], Parallelism) + Sync + Send) -> Result<Vec<Scratch>> {
    // SAFETY: the caller's promise (`work` writes before it reads).
    run_units_from(op, units, parallel, scratch_len, |op, n| unsafe { Scratch::unwritten(op, n) }, work)
}

/// run_units_on with scratch buffers made by `make(op, scratch_len)`.
fn run_units_from(op: &str, units: usize, parallel: bool, scratch_len: usize, make: impl Fn(&str, usize) -> Result<Scratch> + Sync + Send, work: impl Fn(usize, &mut [f32], Parallelism) + Sync + Send) -> Result<Vec<Scratch>> {
    let (workers, inner) = if parallel { workers(units) } else { (1, Parallelism::None) };
    // Each buffer remembers the thread that used it last, and a thread takes its own back: with
    // the pool's last buffer taken instead, about half of a call's units ran on a buffer the other
    // thread had just written, its lines moved between the cores' caches (winograd.rs's are
    // 0.6-2 MB at batch 1).
    let pool = (0..workers).map(|_| make(op, scratch_len).map(|s| (None, s))).collect::<Result<Vec<_>>>()?;
    let pool = RegionLock::new(pool);
    let failed = RegionLock::new(None::<KilnError>);
    let chunks = if workers > 1 { units } else { 1 };
    parallel::for_each_chunk(units, chunks, |start, end| {
        let me = std::thread::current().id();
        // A pool of one per thread cannot run dry unless a caller is itself a pool thread;
        // then a fresh buffer (the size of one band) keeps the call going.
        let popped = pool.with(|p| {
            let at = p.iter().position(|(owner, _)| *owner == Some(me)).or_else(|| p.iter().position(|(owner, _)| owner.is_none()));
            at.map(|i| p.swap_remove(i).1).or_else(|| p.pop().map(|(_, s)| s))
        });
        let mut scratch = match popped.map_or_else(|| make(op, scratch_len), Ok) {
            Ok(s) => s,
            Err(e) => {
                failed.with(|f| *f = Some(e));
                return;
            }
        };
        for unit in start..end {
            work(unit, &mut scratch, inner);
        }
        pool.with(|p| p.push((Some(me), scratch)));
    });
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    Ok(pool.into_inner().into_iter().map(|(_, s)| s).collect())
}

/// Parallel over units when there are at least as many as threads; otherwise the units run
/// one after another and each GEMM uses all threads.
fn workers(units: usize) -> (usize, Parallelism) {
    let threads = parallel::num_threads();
    if threads > 1 && units >= threads {
        (threads, Parallelism::None)
    } else if threads > 1 {
        (1, Parallelism::Threads)
    } else {
        (1, Parallelism::None)
    }
}

/// Where `forward` reads a group's filters from: a float32 weight (`Dense`), or quantized rows
/// expanded a tile at a time (ops/quant/conv.rs).
pub(crate) trait Filters: Sync {
    /// Floats of scratch one worker needs next to its im2col band.
    fn scratch_len(&self, geo: &Geometry) -> usize;
    /// dst[r - rows.start, :] = filter r of group `grp` · x (+= with `accumulate`) for the
    /// group's filters r in `rows` (of 0..out_channels/groups); dst rows `dst_stride` apart.
    ///
    /// SAFETY: as `gemm`: dst must be valid for those writes and no one else may touch them.
    #[allow(clippy::too_many_arguments)]
    unsafe fn apply(&self, geo: &Geometry, grp: usize, rows: Range<usize>, x: Mat, dst: *mut f32, dst_stride: usize, accumulate: bool, scratch: &mut [f32], par: Parallelism);
}

/// A float32 weight [out_channels, channels/groups, kh, kw].
pub struct Dense<'a>(pub &'a [f32]);

impl Filters for Dense<'_> {
    fn scratch_len(&self, _: &Geometry) -> usize {
        0
    }
    unsafe fn apply(&self, geo: &Geometry, grp: usize, rows: Range<usize>, x: Mat, dst: *mut f32, dst_stride: usize, accumulate: bool, _: &mut [f32], par: Parallelism) {
        let (patch, first) = (geo.patch(), grp * geo.group_out_channels() + rows.start);
        gemm(dst, dst_stride, accumulate, Mat::new(&self.0[first * patch..], rows.len(), patch, patch), x, par);
    }
}

/// Output [batch, out_channels, out_height, out_width] of the convolution of `input`
/// [batch, channels, height, width] with the filters [out_channels, channels/groups, kh, kw].
pub(crate) fn forward(geo: &Geometry, input: &[f32], filters: &impl Filters, bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    forward_fused(geo, input, filters, bias, SliceEpilogue::default(), op)
}

/// `forward`, with the epilogue (residual, activation) run on each band of output rows as soon
/// as it is written.
pub(crate) fn forward_fused(geo: &Geometry, input: &[f32], filters: &impl Filters, bias: Option<&[f32]>, epilogue: SliceEpilogue, op: &str) -> Result<Vec<f32>> {
    // Not zeroed: every unit writes all of its band (the bias fill, or a GEMM that overwrites),
    // and zeroing cost a pass over each output (up to 25 MB, ResNet-50 batch 8) before any work.
    // SAFETY: forward_fused_into writes every element (see there).
    unsafe { try_written(op, geo.batch * geo.out_image_len(), |out| forward_fused_into(geo, input, filters, bias, epilogue, Slot { out, image_stride: geo.out_image_len() }, op)) }
}

/// `forward_fused` into `slot`: image n's planes at out + n·image_stride (a channel slice of a
/// wider output for conv2dConcat, with no residual; the residual is read at the same offsets).
///
/// SAFETY: as mod.rs `forward_into`.
pub(crate) unsafe fn forward_fused_into(geo: &Geometry, input: &[f32], filters: &impl Filters, bias: Option<&[f32]>, epilogue: SliceEpilogue, slot: Slot, op: &str) -> Result<()> {
    let g = *geo;
    let plan = Plan::new(&g);
    let (plane, ow, patch, cout) = (g.out_plane(), g.out_width, g.patch(), g.group_out_channels());
    let (dst, image_stride) = (SendPtr(slot.out), slot.image_stride);
    let col_len = plan.col_len();
    plan.run(op, g.batch * plan.bands * plan.splits, col_len + filters.scratch_len(&g), |unit, scratch, par| {
        let (col, own) = scratch.split_at_mut(col_len);
        let (split, unit) = (unit % plan.splits, unit / plan.splits);
        let (n, rows) = (unit / plan.bands, plan.rows(unit % plan.bands));
        let outs = plan.split_channels(split);
        let cols = rows.len() * ow;
        let image = &input[n * g.image_len()..(n + 1) * g.image_len()];
        let matrix = plan.columns(image, rows.clone(), col);
        let col_stride = if g.is_pointwise() { g.height * g.width } else { cols };
        for grp in 0..g.groups {
            // Element offset of this unit's first output: channel grp·cout + outs.start, row
            // rows.start of image n. SAFETY: this unit alone writes out[n, those channels, rows, :].
            let first = n * image_stride + (grp * cout + outs.start) * plane + rows.start * ow;
            let band = unsafe { dst.get().add(first) };
            if let Some(bias) = bias {
                for (o, &b) in bias[grp * cout..][outs.clone()].iter().enumerate() {
                    unsafe { std::slice::from_raw_parts_mut(band.add(o * plane), cols) }.fill(b);
                }
            }
            let x = Mat::new(&matrix[grp * patch * col_stride..], patch, cols, col_stride);
            unsafe { filters.apply(&g, grp, outs.clone(), x, band, plane, bias.is_some(), own, par) };
            // SAFETY: as above, this unit's band of its channel planes.
            unsafe { epilogue.apply(dst.get(), first, outs.len(), plane, cols) };
        }
    })?;
    Ok(())
}

/// Gradient [batch, channels, height, width] of the input from `grad_out` [batch, out_channels,
/// out_height, out_width]; `init` (per input channel) is added to every position, which makes
/// this the forward pass of a conv-transpose with bias.
pub fn input_grad(geo: &Geometry, grad_out: &[f32], weight: &[f32], init: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let g = *geo;
    let mut dx = try_zeroed::<f32>(op, g.batch * g.image_len())?;
    let plan = Plan::new(&g);
    let (plane, ow, patch, cout) = (g.out_plane(), g.out_width, g.patch(), g.group_out_channels());
    let in_plane = g.height * g.width;
    let dst = SendPtr(dx.as_mut_ptr());
    // Bands of one image overlap in the input rows they add to, so a unit is a whole image.
    plan.run(op, g.batch, plan.col_len(), |n, col, par| {
        // SAFETY: this unit alone writes dx[n].
        let image = unsafe { std::slice::from_raw_parts_mut(dst.get().add(n * g.image_len()), g.image_len()) };
        if let Some(init) = init {
            for (c, &v) in init.iter().enumerate() {
                image[c * in_plane..(c + 1) * in_plane].fill(v);
            }
        }
        let dy = &grad_out[n * g.out_image_len()..(n + 1) * g.out_image_len()];
        if g.is_pointwise() {
            // im2col is the identity: the GEMM writes the gradient in place.
            for grp in 0..g.groups {
                let w = Mat::new(&weight[grp * cout * patch..], cout, patch, patch).t();
                let y = Mat::new(&dy[grp * cout * plane..], cout, plane, plane);
                unsafe { gemm(image.as_mut_ptr().add(grp * patch * in_plane), in_plane, init.is_some(), w, y, par) };
            }
            return;
        }
        for band in 0..plan.bands {
            let rows = plan.rows(band);
            let cols = rows.len() * ow;
            for grp in 0..g.groups {
                let w = Mat::new(&weight[grp * cout * patch..], cout, patch, patch).t();
                let y = Mat::new(&dy[grp * cout * plane + rows.start * ow..], cout, cols, plane);
                unsafe { gemm(col.as_mut_ptr().add(grp * patch * cols), cols, false, w, y, par) };
            }
            col2im_add(&g, col, rows, image);
        }
    })?;
    Ok(dx)
}

/// Gradient [out_channels, channels/groups, kh, kw] of the weight, summed over the batch.
pub fn weight_grad(geo: &Geometry, input: &[f32], grad_out: &[f32], op: &str) -> Result<Vec<f32>> {
    let g = *geo;
    let plan = Plan::new(&g);
    let (plane, ow, patch, cout) = (g.out_plane(), g.out_width, g.patch(), g.group_out_channels());
    let (col_len, len) = (plan.col_len(), g.weight_len());
    // Each worker's scratch is its im2col band followed by its own accumulator, summed at the
    // end: workers never write the same memory.
    let scratches = plan.run(op, g.batch * plan.bands, col_len + len, |unit, scratch, par| {
        let (col, dw) = scratch.split_at_mut(col_len);
        let (n, rows) = (unit / plan.bands, plan.rows(unit % plan.bands));
        let cols = rows.len() * ow;
        let image = &input[n * g.image_len()..(n + 1) * g.image_len()];
        let matrix = plan.columns(image, rows.clone(), col);
        let col_stride = if g.is_pointwise() { g.height * g.width } else { cols };
        let dy = &grad_out[n * g.out_image_len() + rows.start * ow..];
        for grp in 0..g.groups {
            let y = Mat::new(&dy[grp * cout * plane..], cout, cols, plane);
            let x = Mat::new(&matrix[grp * patch * col_stride..], patch, cols, col_stride).t();
            // SAFETY: dw is this worker's own accumulator, [out_channels, patch].
            unsafe { gemm(dw.as_mut_ptr().add(grp * cout * patch), patch, true, y, x, par) };
        }
    })?;
    let mut total = try_zeroed::<f32>(op, len)?;
    for scratch in &scratches {
        for (a, b) in total.iter_mut().zip(&scratch[col_len..]) {
            *a += *b;
        }
    }
    Ok(total)
}
