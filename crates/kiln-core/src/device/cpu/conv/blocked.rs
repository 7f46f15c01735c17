//! The NCHWc ops on the CPU (ops/conv_nchwc.rs): tensors in and out of nchwc.rs's slice
//! kernels, which hold the layout and the arithmetic.

use super::epilogue::SliceEpilogue;
use super::nchwc::{self, blocked_len, blocks, OutBlocks, Packed, BLOCK};
use crate::alloc;
use crate::multiversion;
use crate::error::Result;
use crate::parallel::{for_each_chunk, SendView};
use crate::params::conv::{Epilogue, FilterSet, Geometry, Reorder};
use crate::params::pool::Plan;
use crate::device::cpu::pool::divisors;
use crate::tensor::Tensor;

/// [N, Ob, OH, OW, 16] from x [N, Cb, H, W, 16] and packed filters; `geo` counts Cb·16 and Ob·16
/// channels. Or from a plain x [N, C, H, W] (C <= 16: `geo` counts C), a stem writing NCHWc.
pub(crate) fn forward(geo: &Geometry, x: &Tensor, packed: &Tensor, bias: Option<&Tensor>, epilogue: Epilogue, op: &str) -> Result<Tensor> {
    let (x, packed) = (x.materialize()?, packed.materialize()?);
    let residual = epilogue.residual.map(|r| r.materialize()).transpose()?;
    let bias = padded_bias(geo, bias, op)?;
    let epilogue = SliceEpilogue { residual: residual.as_ref().map(|r| r.cpu_slice(op)).transpose()?, activation: epilogue.activation };
    let xs = x.cpu_slice(op)?;
    let len = blocked_len(geo.batch, geo.out_channels, geo.out_plane());
    // SAFETY: nchwc::forward and forward_plain_input write every float of y, padded channels included.
    let out = if x.rank() == 4 {
        let taps = packed.cpu_slice(op)?;
        unsafe { alloc::try_filled_by(op, len, |y| nchwc::forward_plain_input(geo, xs, taps, bias.as_deref(), epilogue, y))? }
    } else {
        let winograd = winograd_filters(geo, &packed, op)?;
        let filters = Packed { taps: packed.cpu_slice(op)?, winograd: winograd.as_deref().map(|u| u.0.as_slice()) };
        unsafe { alloc::try_filled_by(op, len, |y| nchwc::forward(geo, xs, filters, bias.as_deref(), epilogue, y))? }
    };
    Tensor::from_vec(out, &[geo.batch, blocks(geo.out_channels), geo.out_height, geo.out_width, BLOCK])
}

/// Each set's [N, Ob_i, OH, OW, 16] side by side on the block axis: nchwc::forward_into writes
/// set i's blocks straight into blocks offset_i.. of every image of the result, so no concat pass
/// reads and writes the output again (SqueezeNet's fire modules).
pub(crate) fn forward_concat(x: &Tensor, sets: &[FilterSet], op: &str) -> Result<Tensor> {
    let first = sets.first().expect("conv2dNchwcConcat: checked to have filter sets").geo;
    let total_blocks: usize = sets.iter().map(|s| blocks(s.geo.out_channels)).sum();
    let x = x.materialize()?;
    let xs = x.cpu_slice(op)?;
    let filters = sets.iter().map(|s| s.weight.materialize()).collect::<Result<Vec<_>>>()?;
    let winograd = sets.iter().zip(&filters).map(|(s, w)| winograd_filters(&s.geo, w, op)).collect::<Result<Vec<_>>>()?;
    let packed = filters.iter().zip(&winograd).map(|(w, u)| Ok(Packed { taps: w.cpu_slice(op)?, winograd: u.as_deref().map(|u| u.0.as_slice()) })).collect::<Result<Vec<_>>>()?;
    let biases = sets.iter().map(|s| padded_bias(&s.geo, s.bias, op)).collect::<Result<Vec<_>>>()?;
    let len = blocked_len(first.batch, total_blocks * BLOCK, first.out_plane());
    // SAFETY: the sets' blocks cover every block of every image, each forward_into writing all of its own.
    let out = unsafe {
        alloc::try_filled_by(op, len, |y: &mut [f32]| {
            let mut offset = 0;
            for ((set, w), bias) in sets.iter().zip(&packed).zip(&biases) {
                nchwc::forward_into(&set.geo, xs, *w, bias.as_deref(), set.activation, y, OutBlocks { per_image: total_blocks, first: offset });
                offset += blocks(set.geo.out_channels);
            }
        })?
    };
    Tensor::from_vec(out, &[first.batch, total_blocks, first.out_height, first.out_width, BLOCK])
}

/// Max pooling of x [N, Cb, H, W, 16] by `plan` (N·Cb planes): each output pixel's 16 lanes are
/// the maxima of its window's pixels, NaN winning and -0 giving +0 as in pool/ (the plain
/// kernel's rules).
pub(crate) fn max_pool(plan: &Plan, x: &Tensor, op: &str) -> Result<Tensor> {
    pool_planes(plan, x, op, |src, dst| max_pool_plane(plan, src, dst))
}

/// Average pooling of x [N, Cb, H, W, 16] by `plan`: each output pixel's 16 lanes are the sums
/// of its window's pixels times pool/'s divisor for the position (`count_include_pad` as
/// avgPool2d's), so the result is the plain kernel's channel by channel. GlobalAveragePool is
/// the window of the whole plane.
pub(crate) fn avg_pool(plan: &Plan, x: &Tensor, count_include_pad: bool, op: &str) -> Result<Tensor> {
    let scale = divisors(plan, count_include_pad);
    pool_planes(plan, x, op, |src, dst| avg_pool_plane(plan, &scale, src, dst))
}

/// [N, Cb, OH, OW, 16] from x [N, Cb, H, W, 16], `pool_plane(input plane, output plane)` run on
/// each of the N·Cb planes; planes spread over the threads when the pooling is large enough to
/// pay for it (the convolutions' rule, a lane of a tap counted as a multiply-add): SqueezeNet's
/// batch-1 MaxPools after its first fire modules and its GlobalAveragePool (16-63 planes of
/// 13x13 to 27x27, some 10-30 µs on one core) ran a chunk per plane on both threads, burning
/// more CPU than they took wall time.
fn pool_planes(plan: &Plan, x: &Tensor, op: &str, pool_plane: impl Fn(&[f32], &mut [f32]) + Sync + Send) -> Result<Tensor> {
    let x = x.materialize()?;
    let xs: &[f32] = x.cpu_slice(op)?;
    let (in_plane, out_plane) = (plan.in_plane() * BLOCK, plan.out_plane() * BLOCK);
    let lane_taps = plan.planes * out_plane * plan.rows.kernel * plan.cols.kernel;
    let chunks = if super::engine::parallel_pays_for(lane_taps) { plan.planes } else { 1 };
    // SAFETY: each plane's chunk writes every float of its output plane.
    let out = unsafe {
        alloc::try_filled_by(op, plan.planes * out_plane, |y: &mut [f32]| {
            let base = SendView(y.as_mut_ptr());
            for_each_chunk(plan.planes, chunks, |start, end| {
                for p in start..end {
                    // SAFETY: plane p's output floats, written by this chunk alone.
                    let dst = std::slice::from_raw_parts_mut(base.get().add(p * out_plane), out_plane);
                    pool_plane(&xs[p * in_plane..][..in_plane], dst);
                }
            });
        })?
    };
    let dims = x.shape();
    Tensor::from_vec(out, &[dims[0], dims[1], plan.rows.out, plan.cols.out, BLOCK])
}

/// One plane of max pooling: AVX-512 intrinsics where the CPU has them, else the portable loop.
fn max_pool_plane(plan: &Plan, src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::SimdLevel::Avx512 {
        // SAFETY: AVX-512F is present.
        return unsafe { max_pool_plane_avx512(plan, src, dst) };
    }
    max_pool_plane_portable(plan, src, dst)
}

/// max_pool_plane_portable's arithmetic on one zmm per pixel: VMAXPS(p, acc) is `p > acc ? p :
/// acc`, the portable comparison, and a NaN tap is noted in a mask (VMAXPS would drop it). The
/// portable loop's [bool; 16] NaN record kept the compiler from one vector per tap: SqueezeNet's
/// batch-1 MaxPools ran at 2-4x onnxruntime's time. The full windows of a 3x3 undilated pool
/// (every MaxPool of SqueezeNet and ResNet-50) run `max_3x3`.
///
/// SAFETY: AVX-512F; src holds the plan's input plane, dst its output plane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_pool_plane_avx512(plan: &Plan, src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let (rows, cols) = (&plan.rows, &plan.cols);
    assert!(src.len() >= rows.len * cols.len * BLOCK && dst.len() == rows.out * cols.out * BLOCK, "maxPool2dNchwc: plane lengths do not match the plan");
    let inside = full_windows(cols);
    let three = rows.kernel == 3 && cols.kernel == 3 && rows.dilation == 1 && cols.dilation == 1;
    let (src, dst, row_len) = (src.as_ptr(), dst.as_mut_ptr(), cols.len * BLOCK);
    for oy in 0..rows.out {
        let (ylo, yhi) = rows.taps(oy);
        // The row's full windows when its 3 window rows are inside: max_3x3.
        let fast = if three && yhi - ylo == 3 { inside.clone() } else { 0..0 };
        for ox in 0..cols.out {
            let out = if fast.contains(&ox) {
                max_3x3(src.add((oy * rows.stride - rows.pad_before) * row_len + (ox * cols.stride - cols.pad_before) * BLOCK), row_len)
            } else {
                let (xlo, xhi) = if inside.contains(&ox) { (0, cols.kernel) } else { cols.taps(ox) };
                let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
                let mut nan: __mmask16 = 0;
                for ky in ylo..yhi {
                    let row = src.add((oy * rows.stride + ky * rows.dilation - rows.pad_before) * row_len);
                    for kx in xlo..xhi {
                        let pixel = _mm512_loadu_ps(row.add((ox * cols.stride + kx * cols.dilation - cols.pad_before) * BLOCK));
                        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(pixel, pixel);
                        acc = _mm512_max_ps(pixel, acc);
                    }
                }
                // + 0: -0 gives +0, as in the portable loop.
                _mm512_mask_blend_ps(nan, _mm512_add_ps(acc, _mm512_setzero_ps()), _mm512_set1_ps(f32::NAN))
            };
            _mm512_storeu_ps(dst.add((oy * cols.out + ox) * BLOCK), out);
        }
    }
}

/// The maximum of a full 3x3 window whose top-left pixel is at `at` (rows `row_len` floats
/// apart), with max_pool_plane_portable's result: its 9 loads and maxes unrolled, the maxes as a
/// tree (4 deep, not a chain of 9), and NaN noted two taps per compare (UNORD is true when
/// either operand is NaN). The generic loop (bounds, multiplies and a compare per tap) ran
/// SqueezeNet's stem pool at ~50 cycles per output pixel.
///
/// SAFETY: AVX-512F; the 9 pixels are readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn max_3x3(at: *const f32, row_len: usize) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let p: [__m512; 9] = std::array::from_fn(|t| _mm512_loadu_ps(at.add(t / 3 * row_len + t % 3 * BLOCK)));
    let unord = |a, b| _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
    let nan = unord(p[0], p[1]) | unord(p[2], p[3]) | unord(p[4], p[5]) | unord(p[6], p[7]) | unord(p[8], p[8]);
    let max = _mm512_max_ps(_mm512_max_ps(_mm512_max_ps(p[0], p[1]), _mm512_max_ps(p[2], p[3])), _mm512_max_ps(_mm512_max_ps(p[4], p[5]), _mm512_max_ps(p[6], p[7])));
    // + 0: -0 gives +0, as in the portable loop (whichever zero the tree kept).
    _mm512_mask_blend_ps(nan, _mm512_add_ps(_mm512_max_ps(max, p[8]), _mm512_setzero_ps()), _mm512_set1_ps(f32::NAN))
}

multiversion! {
    /// One plane: the 16 lanes of a pixel are one vector, a max per tap (NaN noted apart, so it
    /// wins). The window's rows are found once per output row, its columns (two integer
    /// divisions in AxisPlan::taps) only at the borders: the per-pixel divisions cost more than
    /// the 9 vector maxes of SqueezeNet's stem pool ([1, 4, 111, 111, 16] 3x3/s2).
    fn max_pool_plane_portable(plan: &Plan, src: &[f32], dst: &mut [f32]) {
        let (rows, cols) = (&plan.rows, &plan.cols);
        let row_len = cols.len * BLOCK;
        let inside = full_windows(cols);
        for (oy, out_row) in dst.chunks_exact_mut(cols.out * BLOCK).enumerate() {
            let (ylo, yhi) = rows.taps(oy);
            for (ox, out) in out_row.chunks_exact_mut(BLOCK).enumerate() {
                let (xlo, xhi) = if inside.contains(&ox) { (0, cols.kernel) } else { cols.taps(ox) };
                let mut acc = [f32::NEG_INFINITY; BLOCK];
                let mut nan = [false; BLOCK];
                for ky in ylo..yhi {
                    let iy = oy * rows.stride + ky * rows.dilation - rows.pad_before;
                    let row = &src[iy * row_len..][..row_len];
                    for kx in xlo..xhi {
                        let ix = ox * cols.stride + kx * cols.dilation - cols.pad_before;
                        let pixel: &[f32; BLOCK] = row[ix * BLOCK..][..BLOCK].try_into().unwrap();
                        for l in 0..BLOCK {
                            nan[l] |= pixel[l].is_nan();
                            acc[l] = if pixel[l] > acc[l] { pixel[l] } else { acc[l] };
                        }
                    }
                }
                for l in 0..BLOCK {
                    out[l] = if nan[l] { f32::NAN } else { acc[l] + 0.0 };
                }
            }
        }
    }
}

multiversion! {
    /// One plane: the 16 lanes of a pixel are one vector (an add per tap, a multiply per output).
    fn avg_pool_plane(plan: &Plan, scale: &[f32], src: &[f32], dst: &mut [f32]) {
        for (at, out) in dst.chunks_exact_mut(BLOCK).enumerate() {
            let mut acc = [0.0f32; BLOCK];
            for_each_tap(plan, src, at, |pixel| {
                for l in 0..BLOCK {
                    acc[l] += pixel[l];
                }
            });
            for l in 0..BLOCK {
                out[l] = acc[l] * scale[at];
            }
        }
    }
}

/// The output positions of `axis` whose every tap lands inside the input.
fn full_windows(axis: &crate::params::pool::AxisPlan) -> std::ops::Range<usize> {
    let lo = axis.pad_before.div_ceil(axis.stride).min(axis.out);
    let reach = (axis.kernel - 1) * axis.dilation;
    let hi = if axis.len + axis.pad_before > reach { ((axis.len + axis.pad_before - reach - 1) / axis.stride + 1).min(axis.out) } else { 0 };
    lo..hi.max(lo)
}

/// Calls `visit` with each pixel of the plane `src` inside the window of output position `at`
/// (row-major in the output plane), row by row.
#[inline(always)]
fn for_each_tap(plan: &Plan, src: &[f32], at: usize, mut visit: impl FnMut(&[f32; BLOCK])) {
    let (rows, cols) = (&plan.rows, &plan.cols);
    let (oy, ox) = (at / cols.out, at % cols.out);
    let ((ylo, yhi), (xlo, xhi)) = (rows.taps(oy), cols.taps(ox));
    for ky in ylo..yhi {
        let iy = oy * rows.stride + ky * rows.dilation - rows.pad_before;
        for kx in xlo..xhi {
            let ix = ox * cols.stride + kx * cols.dilation - cols.pad_before;
            visit(src[(iy * cols.len + ix) * BLOCK..][..BLOCK].try_into().unwrap());
        }
    }
}

/// The Winograd transform of packed filters (nchwc::winograd_filters), kept with them.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct WinogradFilters(Vec<f32>);

/// `packed`'s Winograd transform if a forward of `geo` runs Winograd: made at the first such call
/// and kept as a derived form of the packed tensor (freed with it, dropped by an in-place write),
/// so the transform (16 floats per pair of input and output channels: 4 MB for ResNet-50's
/// 256->256) is not made again on every call.
fn winograd_filters(geo: &Geometry, packed: &Tensor, op: &str) -> Result<Option<std::sync::Arc<WinogradFilters>>> {
    #[cfg(target_arch = "x86_64")]
    if nchwc::winograd_runs(geo) {
        let taps = packed.cpu_slice(op)?;
        let kept = packed.derived(&[], || {
            let u = nchwc::winograd_filters(geo, taps, op)?;
            let bytes = u.len() * std::mem::size_of::<f32>();
            Ok((WinogradFilters(u), bytes))
        })?;
        return Ok(Some(kept));
    }
    let _ = (geo, packed, op);
    Ok(None)
}

/// The bias [O] padded with zeros to whole blocks (at most 15 floats more), as nchwc::forward takes it.
fn padded_bias(geo: &Geometry, bias: Option<&Tensor>, op: &str) -> Result<Option<Vec<f32>>> {
    bias.map(|b| {
        let mut padded = b.elements::<f32>(op)?;
        padded.resize(blocks(geo.out_channels) * BLOCK, 0.0);
        Ok(padded)
    })
    .transpose()
}

/// NCHW <-> NCHWc; `dims` [N, C, H, W] are the plain side's.
pub(crate) fn reorder(x: &Tensor, direction: Reorder, dims: [usize; 4], op: &str) -> Result<Tensor> {
    let [n, c, h, w] = dims;
    let plane = h * w;
    let x = x.materialize()?;
    let xs = x.cpu_slice(op)?;
    // SAFETY: to_blocked and from_blocked write every float of their output.
    Ok(match direction {
        Reorder::ToBlocked => {
            let out = unsafe { alloc::try_filled_by(op, blocked_len(n, c, plane), |y| nchwc::to_blocked(xs, n, c, plane, y))? };
            Tensor::from_vec(out, &[n, blocks(c), h, w, BLOCK])?
        }
        Reorder::FromBlocked => {
            let out = unsafe { alloc::try_filled_by(op, n * c * plane, |y| nchwc::from_blocked(xs, n, c, plane, y))? };
            Tensor::from_vec(out, &dims)?
        }
    })
}

/// [Ob, Cb, KH, KW, 16, 16] from a weight [O, C, KH, KW] (`geo` gives O, C and the kernel).
pub(crate) fn pack_filters(geo: &Geometry, w: &Tensor, op: &str) -> Result<Tensor> {
    let w = w.materialize()?;
    let ws = w.cpu_slice(op)?;
    let mut packed = alloc::try_zeroed::<f32>(op, nchwc::packed_filters_len(geo))?;
    nchwc::pack_filters(geo, ws, &mut packed);
    Tensor::from_vec(packed, &[blocks(geo.out_channels), blocks(geo.channels), geo.kernel[0], geo.kernel[1], BLOCK, BLOCK])
}
