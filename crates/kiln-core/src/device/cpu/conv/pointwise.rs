//! The forward pass of pointwise convolutions (1x1, stride 1, unpadded, one group) with few
//! input channels, on AVX-512: out[n, o, p] = Σ_c W[o, c] · x[n, c, p] over the image's
//! positions p, which are contiguous in both the input and the output planes.
//!
//! A tile of MR output channels x NV·16 positions accumulates in MR·NV registers, loading its
//! NV vectors of each input channel straight from the image and broadcasting the filters from the
//! weight as it is ([O, C]): no im2col (there is none for 1x1), no packing of either operand, no
//! tile buffer. The bias is the accumulators' start, the residual is added and relu applied in
//! registers before the store, and the other activations run on each stored run while it is in
//! L1 (epilogue.rs).
//! Why not the GEMM: with K = channels of 16 to 64 (SqueezeNet's expands and squeezes) the
//! GEMM's packing of its panels is a large share of a short product; examples/cnn_convs.rs
//! compares both (`KILN_CONV_PATH=im2col` runs the GEMM). direct.rs's tiles, which serve 3x3
//! convolutions, ran these at a third to a half of the GEMM's speed: they copy a padded band of
//! the input and store through a tile buffer row by row, which a 1x1 convolution does not need.

use super::engine::{parallel_pays, run_units_on};
use super::epilogue::SliceEpilogue;
use super::Slot;
use crate::alloc::try_written;
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::params::unary::UnaryOp;
use crate::parallel::SendPtr;
use std::arch::x86_64::*;

/// Most input channels served (examples/cnn_convs.rs, with the bias and relu fused, loaded
/// machine, against the GEMM in one process): up to 64 this kernel was ahead in most pairs; at
/// 128 (SqueezeNet's 128->16 and 128->32, ResNet-50's 128->512) it was level, at 256 to 2048
/// behind (ResNet-50's 2048->512 at 7x7: 59-93 against 103-140 GFLOP per CPU-second), as a
/// unit's slice of every input channel outgrows L1 and is read again for each block of filters.
const MAX_CHANNELS: usize = 64;
/// Input channels below which few_channels.rs's and im2col's paths are as they were.
const MIN_CHANNELS: usize = 8;
/// Positions of one work unit: a unit's slice of every input channel (64 x 384 floats at most,
/// 96 KiB) stays in L2 while every block of filters reads it.
const UNIT_POSITIONS: usize = 384;
/// Work units per thread at least: a small image (13x13 at batch 1: one unit of positions) is
/// cut by blocks of output channels too, so every thread works.
const UNITS_PER_THREAD: usize = 4;

/// Whether `forward` serves this convolution: AVX-512, pointwise, one group, MIN_CHANNELS to
/// MAX_CHANNELS input channels, unless `KILN_CONV_PATH=im2col` asks for the GEMM.
pub(crate) fn applies(g: &Geometry) -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
        && g.is_pointwise()
        && g.groups == 1
        && g.macs() > 0
        && (MIN_CHANNELS..=MAX_CHANNELS).contains(&g.channels)
        && std::env::var_os("KILN_CONV_PATH").is_none_or(|v| v != "im2col")
}

/// Output [batch, out_channels, height, width] of the convolution of `input` [batch, channels,
/// height, width] with `weight` [out_channels, channels, 1, 1] (+ bias), then the epilogue.
/// Needs `applies(geo)`.
pub(crate) fn forward(geo: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, op: &str) -> Result<Vec<f32>> {
    assert!(applies(geo), "conv: pointwise kernel called for a convolution it does not serve");
    let g = *geo;
    let plane = g.height * g.width;
    assert!(input.len() >= g.batch * g.channels * plane && weight.len() >= g.out_channels * g.channels, "conv: pointwise operands out of bounds");
    // SAFETY: the units write every element of the output (each position of each channel once).
    unsafe { try_written(op, g.batch * g.out_channels * plane, |out| run(&g, input, weight, bias, epilogue, Slot { out, image_stride: g.out_image_len() }, op)) }
}

/// `forward` into `slot` (image n's planes at out + n·image_stride), no residual: conv2dConcat's.
///
/// SAFETY: as mod.rs `forward_into`.
pub(crate) unsafe fn forward_into(geo: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, slot: Slot, op: &str) -> Result<()> {
    assert!(applies(geo) && epilogue.residual.is_none(), "conv: pointwise kernel called for a convolution it does not serve");
    let plane = geo.height * geo.width;
    assert!(input.len() >= geo.batch * geo.channels * plane && weight.len() >= geo.out_channels * geo.channels, "conv: pointwise operands out of bounds");
    run(geo, input, weight, bias, epilogue, slot, op)
}

/// Tiles of 8 output channels x 48 positions, and 1 x 64 for the last out_channels % 8.
const MR: usize = 8;
const NV: usize = 3;
const TAIL_NV: usize = 4;

/// SAFETY: slot valid for writes of out_channels·height·width floats at out + n·image_stride for
/// each image n; with a residual, image_stride is out_channels·height·width.
unsafe fn run(g: &Geometry, input: &[f32], weight: &[f32], bias: Option<&[f32]>, epilogue: SliceEpilogue, slot: Slot, op: &str) -> Result<()> {
    let (plane, k, o) = (g.height * g.width, g.channels, g.out_channels);
    let chunks = plane.div_ceil(UNIT_POSITIONS);
    let blocks = o.div_ceil(MR);
    let parallel = parallel_pays(g);
    let threads = if parallel { crate::parallel::num_threads() } else { 1 };
    let wanted = if threads > 1 { threads * UNITS_PER_THREAD } else { 1 };
    let per_split = blocks.div_ceil(wanted.div_ceil(g.batch * chunks).clamp(1, blocks));
    let splits = blocks.div_ceil(per_split);
    // The residual is added and relu applied in registers before the store; the other
    // activations run on each stored run (a call per run of 48 floats for relu too, with a
    // residual, cost ResNet-50's 64->256 blocks 20-40% more CPU than the GEMM path).
    let relu = matches!(epilogue.activation, Some(a) if a.op == UnaryOp::Relu);
    let after = SliceEpilogue { residual: None, activation: if relu { None } else { epilogue.activation } };
    let residual = epilogue.residual.map(|r| {
        assert!(r.len() >= g.batch * o * plane, "conv: residual out of bounds");
        SendPtr(r.as_ptr() as *mut f32)
    });
    let (dst, image_stride) = (SendPtr(slot.out), slot.image_stride);
    run_units_on(op, g.batch * chunks * splits, parallel, 0, |unit, _, _| {
        let (n, chunk, split) = (unit / (chunks * splits), unit / splits % chunks, unit % splits);
        let positions = chunk * UNIT_POSITIONS..((chunk + 1) * UNIT_POSITIONS).min(plane);
        let x = &input[n * k * plane..(n + 1) * k * plane];
        for block in split * per_split..((split + 1) * per_split).min(blocks) {
            let first = block * MR;
            let rows = MR.min(o - first);
            let mut p = positions.start;
            while p < positions.end {
                let len = (positions.end - p).min(if rows == MR { NV * 16 } else { TAIL_NV * 16 });
                // Output and residual offsets: the output's images may sit further apart (Slot).
                let at = n * image_stride + first * plane + p;
                let res_at = (n * o + first) * plane + p;
                // SAFETY: AVX-512 is present (`applies`); the loads read x[c, p..p + len] and
                // weight rows first..first + rows; this unit alone writes out[n, those rows, p..p + len].
                unsafe {
                    let w = weight.as_ptr().add(first * k);
                    let b = bias.map(|b| b[first..first + rows].as_ptr());
                    let res = residual.as_ref().map(|r| r.ptr().add(res_at) as *const f32);
                    if rows == MR {
                        let out = Out { at: dst.ptr().add(at), stride: plane, len, residual: res, relu };
                        tile::<MR, NV>(x.as_ptr().add(p), plane, k, w, b, out);
                    } else {
                        for r in 0..rows {
                            let out = Out { at: dst.ptr().add(at + r * plane), stride: plane, len, residual: res.map(|q| q.add(r * plane)), relu };
                            tile::<1, TAIL_NV>(x.as_ptr().add(p), plane, k, w.add(r * k), b.map(|b| b.add(r)), out);
                        }
                    }
                    after.apply(dst.ptr(), at, rows, plane, len);
                }
                p += len;
            }
        }
    })?;
    Ok(())
}

/// Where a tile's R rows go: `len` floats at `at + r·stride`, with the residual's run at the same
/// offsets from `residual` added and then relu applied if asked.
struct Out {
    at: *mut f32,
    stride: usize,
    len: usize,
    residual: Option<*const f32>,
    relu: bool,
}

/// out row r = (bias[r] +) Σ_c w[r·k + c] · x[c·x_stride + 0..len] (+ residual row r), then
/// max(., 0) if `out.relu`, for r in 0..R; len <= 16·V, the vectors past it masked off.
///
/// SAFETY: needs AVX-512F; x readable at c·x_stride + 0..len for c < k, w at r·k + c, bias at
/// 0..R; out's rows writable and its residual rows readable (Out).
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const V: usize>(x: *const f32, x_stride: usize, k: usize, w: *const f32, bias: Option<*const f32>, out: Out) {
    let mut masks = [0 as __mmask16; V];
    for (j, m) in masks.iter_mut().enumerate() {
        let n = out.len.saturating_sub(16 * j).min(16);
        *m = if n == 16 { !0 } else { ((1u32 << n) - 1) as __mmask16 };
    }
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    if let Some(b) = bias {
        for (r, acc) in acc.iter_mut().enumerate() {
            *acc = [_mm512_set1_ps(*b.add(r)); V];
        }
    }
    for c in 0..k {
        let src = x.add(c * x_stride);
        let mut v = [_mm512_setzero_ps(); V];
        for (j, v) in v.iter_mut().enumerate() {
            *v = _mm512_maskz_loadu_ps(masks[j], src.add(16 * j));
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*w.add(r * k + c));
            for j in 0..V {
                acc[j] = _mm512_fmadd_ps(b, v[j], acc[j]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (j, &a) in acc.iter().enumerate() {
            let at = r * out.stride + 16 * j;
            let a = match out.residual {
                Some(res) => _mm512_add_ps(a, _mm512_maskz_loadu_ps(masks[j], res.add(at))),
                None => a,
            };
            let a = if out.relu { _mm512_max_ps(a, _mm512_setzero_ps()) } else { a };
            _mm512_mask_storeu_ps(out.at.add(at), masks[j], a);
        }
    }
}
