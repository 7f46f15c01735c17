//! Direct forward and weight-gradient kernels for convolutions with few input channels (1 to 7:
//! a network's first layer; bench conv2d-a has one), one group, on AVX-512. With so few channels
//! each output sums only C·kh·kw products (9 for conv2d-a), so im2col + GEMM spends its time
//! copying patches and filling a GEMM of depth 9, and direct.rs's padded-grid tiles spend theirs
//! on tile copies; here every vector of 16 outputs goes straight to the output from the registers
//! that summed it.
//!
//! - forward: a tile is OB output channels x S vectors of 16 outputs (OB·S = 24 accumulators), the
//!   vectors taken in raster order over output rows, each read from the unit's zero-padded copy
//!   of its input rows (cheap: few channels) at `row·padded_width + 16·v + tap offset`, and
//!   stored with a lane mask at the row's end. Lanes past the row read the padded row's tail or
//!   the next row and are never stored. Strides up to the kernel's size: the copy is direct.rs's
//!   phase planes, so 16 outputs of a row still read 16 consecutive floats per tap. The stride-2
//!   stems (SqueezeNet's 3x3 and ResNet-50's 7x7, 3 channels) ran on im2col + GEMM at 52-77 and
//!   83-88 GFLOP per CPU-second, here at 81-113 and 152-183 (examples/cnn_convs.rs, batch 1 and
//!   8, loaded machine). The epilogue (residual, activation) runs on each unit's band of every
//!   channel as soon as the unit has written it, while it is in cache.
//! - weight gradient (unit stride): dW[o, tap] = Σ dy[o, p] · x[p + offset(tap)] over output
//!   positions p, 8 output channels x 3 taps accumulating 24 vectors over a band of rows (11 loads
//!   per 24 FMAs); the vectors are added into the worker's [o, tap, 16] accumulator after each band
//!   and summed across lanes once at the end. Loads past a row's end are masked to zero on both
//!   factors (an Inf beyond the row must not turn a zero product into NaN).
//!
//! The input gradient is few_channels_dx.rs's.

use super::direct::{pack_filters, pad_rows, stride_within_kernel, tile_rows, Shape, MIN_CHANNELS};
use super::engine::run_units;
use super::epilogue::SliceEpilogue;
use crate::alloc::try_written;
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::parallel::{self, SendPtr};
use crate::storage::try_zeroed;
use std::arch::x86_64::*;

/// Output channels x taps of one weight-gradient tile (8 x 3 = 24 accumulators).
const DW_OUTS: usize = 8;
const DW_TAPS: usize = 3;
/// Outputs (every output channel) of one forward band at most: 1 MiB, so the epilogue (residual,
/// activation) reads the band back from L2. A batch-8 stem was one band per image (64 x 111 x 111
/// outputs, 3 MB) and its relu went back to memory.
const OUT_BAND_FLOATS: usize = 1 << 18;
/// Floats of dy (every output channel) per weight-gradient band: 64 KiB, so a band's dy stays in
/// L2 while every (channel block, tap block) pass reads it again.
const DW_BAND_FLOATS: usize = 1 << 14;

/// Whether these kernels serve this convolution's weight gradient (and few_channels_dx.rs its
/// input gradient): `applies_to_forward`'s convolutions of unit stride.
pub(crate) fn applies(g: &Geometry) -> bool {
    applies_to_forward(g) && g.stride == [1, 1]
}

/// Whether `forward` serves this convolution: AVX-512, 1 to 7 input channels, one group, not
/// pointwise, any padding and dilation, strides up to the kernel's size, unless
/// `KILN_CONV_PATH=im2col`. (Pointwise convolutions of 16 to 64 channels, SqueezeNet's expands,
/// ran here at 28-86% of the GEMM's speed, examples/cnn_convs.rs: they stay on it.)
pub(crate) fn applies_to_forward(g: &Geometry) -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
        && g.macs() > 0
        && g.channels < MIN_CHANNELS
        && g.groups == 1
        && !g.is_pointwise()
        && stride_within_kernel(g)
        && std::env::var_os("KILN_CONV_PATH").is_none_or(|v| v != "im2col")
}

/// Lanes 0..n of a vector (all for n >= 16).
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        !0
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Rows of an image that one work unit covers, and how many units an image has: enough units for
/// every thread to get several (a batch of 1 is cut into row bands), bands of at most `max_rows`.
pub(super) fn bands(batch: usize, out_height: usize, max_rows: usize) -> (usize, usize) {
    let wanted = (4 * parallel::num_threads()).div_ceil(batch.max(1));
    let height = out_height.div_ceil(wanted).clamp(1, max_rows.max(1));
    (height, out_height.div_ceil(height))
}

/// Output [batch, out_channels, out_height, out_width] (+ bias per channel), then the epilogue.
/// Needs `applies_to_forward`.
pub(crate) fn forward(geo: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    let at = Epilogued { bias, epilogue };
    // SAFETY: forward_tiles writes every output element.
    unsafe {
        try_written(op, geo.batch * geo.out_image_len(), |out| match tile_rows(s.out_channels) {
            8 => forward_tiles::<8, 3>(&s, input, weight, at, out, op),
            4 => forward_tiles::<4, 6>(&s, input, weight, at, out, op),
            2 => forward_tiles::<2, 12>(&s, input, weight, at, out, op),
            _ => forward_tiles::<1, 24>(&s, input, weight, at, out, op),
        })
    }
}

/// What a forward adds to its sums: the bias per channel, then the epilogue.
#[derive(Clone, Copy)]
struct Epilogued<'a> {
    bias: Option<&'a [f32]>,
    epilogue: SliceEpilogue<'a>,
}

/// One output vector of a tile: where it reads (at tap offset 0), where it goes, which lanes.
#[derive(Clone, Copy)]
struct Slot {
    src: *const f32,
    dst: *mut f32,
    mask: __mmask16,
}

/// SAFETY: out must be valid for writes of the whole output; every element is written.
unsafe fn forward_tiles<const OB: usize, const S: usize>(s: &Shape, input: &[f32], weight: &[f32], add: Epilogued, out: *mut f32, op: &str) -> Result<()> {
    let taps = s.taps();
    let filters = pack_filters(s, OB, |o, t| weight[o * taps + t]);
    let (wp, ow, oh, outs) = (s.padded_width(), s.out_width, s.out_height, s.out_channels);
    let vr = ow.div_ceil(16);
    // Bands of at most OUT_BAND_FLOATS outputs, so the epilogue finds them in L2.
    let (band_h, bands) = bands(s.batch, oh, OUT_BAND_FLOATS / (outs * ow).max(1));
    // A unit copies the phase-plane rows its band reads: band_h + reach(0) of each.
    let stride = (band_h + s.reach(0)) * wp;
    let offsets = s.tap_offsets(stride);
    let (image_len, plane) = (s.channels * s.height * s.width, oh * ow);
    let dst = SendPtr(out);
    // 16 floats of slack after the last plane: the last vector of a row reads up to 15 past it.
    run_units(op, s.macs(), s.batch * bands, s.channels * s.phases() * stride + 16, |unit, buf, _| {
        let (n, rows) = (unit / bands, (unit % bands) * band_h..((unit % bands + 1) * band_h).min(oh));
        pad_rows(s, &input[n * image_len..(n + 1) * image_len], rows.start..rows.end + s.reach(0), buf, stride);
        let vectors = rows.len() * vr;
        for (block, w) in filters.chunks_exact(taps * OB).enumerate() {
            let valid = OB.min(outs - block * OB);
            // SAFETY: this unit alone writes rows `rows` of image n's planes.
            let out_block = unsafe { dst.ptr().add((n * outs + block * OB) * plane) };
            for first in (0..vectors).step_by(S) {
                // Slots past the unit's last vector read the band's start and store nothing.
                let mut slots = [Slot { src: buf.as_ptr(), dst: out_block, mask: 0 }; S];
                for (slot, idx) in slots.iter_mut().zip(first..vectors) {
                    let (r, v) = (idx / vr, idx % vr);
                    // SAFETY: inside the band (local row r) and inside the output plane.
                    *slot = unsafe { Slot { src: buf.as_ptr().add(r * wp + 16 * v), dst: out_block.add((rows.start + r) * ow + 16 * v), mask: lanes(ow - 16 * v) } };
                }
                // SAFETY: AVX-512 (`applies_to_forward`); every read is below the band's last
                // plane + 16 floats (the slack), every store is a valid lane of this unit's outputs.
                unsafe { forward_tile::<OB, S>(&slots, &offsets, w.as_ptr(), plane, valid, add.bias.map(|b| &b[block * OB..block * OB + valid])) };
            }
        }
        // SAFETY: this unit's rows of every channel plane of image n, all written above.
        unsafe { add.epilogue.apply(dst.ptr(), n * outs * plane + rows.start * ow, outs, plane, rows.len() * ow) };
    })?;
    Ok(())
}

/// out[ob][slot] = Σ_taps filters[tap, ob] · src_slot[offset(tap) + 0..16] (+ bias), for the
/// first `valid` of OB channels, planes `plane` apart.
///
/// SAFETY: needs AVX-512F; as forward_tiles says.
#[target_feature(enable = "avx512f")]
unsafe fn forward_tile<const OB: usize, const S: usize>(slots: &[Slot; S], offsets: &[usize], filters: *const f32, plane: usize, valid: usize, bias: Option<&[f32]>) {
    let mut acc = [[_mm512_setzero_ps(); S]; OB];
    let src = (*slots).map(|s| s.src);
    for (t, &off) in offsets.iter().enumerate() {
        let mut v = [_mm512_setzero_ps(); S];
        for (v, src) in v.iter_mut().zip(src) {
            *v = _mm512_loadu_ps(src.add(off));
        }
        let w = filters.add(t * OB);
        for (ob, acc) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*w.add(ob));
            for (a, v) in acc.iter_mut().zip(v) {
                *a = _mm512_fmadd_ps(b, v, *a);
            }
        }
    }
    for (ob, acc) in acc.iter().enumerate().take(valid) {
        let add = _mm512_set1_ps(bias.map_or(0.0, |b| b[ob]));
        for (slot, a) in slots.iter().zip(acc) {
            _mm512_mask_storeu_ps(slot.dst.add(ob * plane), slot.mask, _mm512_add_ps(*a, add));
        }
    }
}

/// Gradient [out_channels, channels, kh, kw] of the weight, summed over the batch. Needs `applies`.
pub(crate) fn weight_grad(geo: &Geometry, input: &[f32], grad_out: &[f32], op: &str) -> Result<Vec<f32>> {
    let s = Shape::of_forward(geo);
    let (taps, outs) = (s.taps(), s.out_channels);
    let (wp, ow, oh) = (s.padded_width(), s.out_width, s.out_height);
    let (tap_blocks, o_blocks) = (taps.div_ceil(DW_TAPS), outs.div_ceil(DW_OUTS));
    let (band_h, bands) = bands(s.batch, oh, DW_BAND_FLOATS / (outs * ow).max(1));
    let stride = (band_h + (s.kernel[0] - 1) * s.dilation[0]) * wp;
    let mut offsets = s.tap_offsets(stride);
    // The last tap block repeats offset 0; its sums land in accumulator rows past `taps`, dropped.
    offsets.resize(tap_blocks * DW_TAPS, 0);
    // A worker's [o, tap, 16] vector sums (o and tap padded to whole blocks), then its band.
    let row = tap_blocks * DW_TAPS * 16;
    let acc_len = o_blocks * DW_OUTS * row;
    let (image_len, plane) = (s.channels * s.height * s.width, oh * ow);
    let scratches = run_units(op, s.macs(), s.batch * bands, acc_len + s.channels * stride + 16, |unit, scratch, _| {
        let (acc, buf) = scratch.split_at_mut(acc_len);
        let (n, rows) = (unit / bands, (unit % bands) * band_h..((unit % bands + 1) * band_h).min(oh));
        pad_rows(&s, &input[n * image_len..(n + 1) * image_len], rows.start..rows.end + (s.kernel[0] - 1) * s.dilation[0], buf, stride);
        let dy = &grad_out[(n * outs) * plane + rows.start * ow..];
        for ob in 0..o_blocks {
            let valid = DW_OUTS.min(outs - ob * DW_OUTS);
            for (tb, offs) in offsets.chunks_exact(DW_TAPS).enumerate() {
                let offs: &[usize; DW_TAPS] = offs.try_into().expect("chunks_exact");
                let band = Band { rows: rows.len(), ow, wp, plane };
                // SAFETY: AVX-512 (`applies`); dy rows of the `valid` channels are inside
                // grad_out, x reads stay below the band's planes + 16 floats of slack, and the
                // accumulator block is inside `acc`.
                unsafe { weight_tile(&band, dy.as_ptr().add(ob * DW_OUTS * plane), valid, buf.as_ptr(), offs, acc.as_mut_ptr().add(ob * DW_OUTS * row + tb * DW_TAPS * 16), row) };
            }
        }
    })?;
    let mut total = try_zeroed::<f32>(op, outs * taps)?;
    for scratch in &scratches {
        for (o, sums) in scratch[..acc_len].chunks_exact(row).take(outs).enumerate() {
            for (t, lanes) in sums.chunks_exact(16).take(taps).enumerate() {
                total[o * taps + t] += lanes.iter().sum::<f32>();
            }
        }
    }
    Ok(total)
}

/// The geometry of one weight-gradient band: `rows` output rows of `ow`, input rows `wp` apart in
/// the padded band, dy planes `plane` apart.
struct Band {
    rows: usize,
    ow: usize,
    wp: usize,
    plane: usize,
}

/// acc[ob·acc_stride + t·16 + lane] += Σ over the band's outputs p of dy[ob, p] · x[p + offs[t]]
/// (lane-wise partial sums), for `valid` of DW_OUTS channels and DW_TAPS taps.
///
/// SAFETY: needs AVX-512F; as weight_grad says.
#[target_feature(enable = "avx512f")]
unsafe fn weight_tile(b: &Band, dy: *const f32, valid: usize, x: *const f32, offs: &[usize; DW_TAPS], acc_out: *mut f32, acc_stride: usize) {
    let mut acc = [[_mm512_setzero_ps(); DW_TAPS]; DW_OUTS];
    for r in 0..b.rows {
        for v0 in (0..b.ow).step_by(16) {
            let m = lanes(b.ow - v0);
            let mut d = [_mm512_setzero_ps(); DW_OUTS];
            for (ob, d) in d.iter_mut().enumerate().take(valid) {
                *d = _mm512_maskz_loadu_ps(m, dy.add(ob * b.plane + r * b.ow + v0));
            }
            let xr = x.add(r * b.wp + v0);
            for (t, &off) in offs.iter().enumerate() {
                let xv = _mm512_maskz_loadu_ps(m, xr.add(off));
                for (acc, d) in acc.iter_mut().zip(d) {
                    acc[t] = _mm512_fmadd_ps(d, xv, acc[t]);
                }
            }
        }
    }
    for (ob, acc) in acc.iter().enumerate() {
        for (t, a) in acc.iter().enumerate() {
            let p = acc_out.add(ob * acc_stride + t * 16);
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *a));
        }
    }
}

