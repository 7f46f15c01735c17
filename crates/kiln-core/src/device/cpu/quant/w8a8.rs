//! W8A8: int8 weights times int8 activations, for `linear_w8a8` and `conv2d_w8a8`
//! (ops/quant/). The float input is quantized per call with a dynamic scale, the products
//! accumulate exactly in i32, and each output is acc · activation scale · weight scale (+ bias).
//!
//! Scales: a Linear's input row gets its own (one sample's features); a conv's input image gets
//! one for the whole image (PyTorch's per-tensor dynamic scale, per sample), so each input pixel
//! is quantized once, straight into a zero-bordered channel-last byte image, and the im2col that
//! follows is a gather of 4-byte words (4 channels of a tap) into the panels of panels.rs. A sample's result never depends on its batch.
//!
//! Products: from 16 vectors up (a Linear of 16+ rows, every conv) the panel kernel of
//! panels.rs; below that a Linear uses the row-dot tiles of int8_gemm.rs, which read the stored
//! weights as they are. What the weights need beyond their stored bytes (row sums, k padded to
//! 4, a conv's tap-major filters) is built once per weight tensor (packed.rs), not per call.

use super::int8_gemm::{self, Int8Path, Int8Rows};
use super::packed::Int8Weights;
use super::panels::{self, LANES};
use crate::error::Result;
use crate::params::conv::Geometry;
use crate::parallel::{self, SendPtr};
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::sync::Arc;

/// Below this many multiply-adds the linear runs on one thread (as linear.rs).
const MIN_PARALLEL_MACS: usize = 96 * 96 * 96;
/// From this many input rows a Linear packs them into panels (a whole 16-lane block).
const PANEL_MIN_ROWS: usize = LANES;
/// Lanes (batch rows, output positions) per unit of parallel work: 4 panel blocks make the
/// kernel's full 64-lane tile.
const TILE_LANES: usize = 4 * LANES;

thread_local! {
    /// A worker's panel bytes, kept between calls so the hot loop does not allocate.
    static PANELS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's panel buffer of at least `len` bytes.
fn with_panels<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    PANELS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < len {
            p.resize(len, 0);
        }
        f(&mut p[..len])
    })
}

/// out[n, o] = x[n, :] · W[o, :] + bias[o] with x quantized per row. x [n, k] float32, q [o_dim, k]
/// int8 with `scales` [o_dim] and `packed` its kernel view (`Int8Weights::of_linear`); out [n, o_dim].
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear(x: &[f32], n: usize, k: usize, q: &[i8], packed: &Int8Weights, scales: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let o_dim = scales.len();
    assert!(out.len() >= n * o_dim && x.len() >= n * k && q.len() >= o_dim * k);
    assert!(packed.rows == o_dim && packed.k == k, "linearW8A8: packed weights of another shape");
    let path = Int8Path::current();
    let mut xq = vec![0i8; n * k];
    let mut xs = vec![0f32; n];
    // Quantizing is O(n·k) against the product's O(n·k·o): split over threads only when large.
    let row_chunks = if n * k >= 1 << 16 { parallel::num_threads().min(n) } else { 1 };
    let (q_ptr, s_ptr) = (SendPtr(xq.as_mut_ptr()), SendPtr(xs.as_mut_ptr()));
    parallel::for_each_chunk(n, row_chunks, |r0, r1| {
        // SAFETY: chunks own disjoint rows r0..r1 of xq [n, k] and xs [n].
        let (q, s) = unsafe { (std::slice::from_raw_parts_mut(q_ptr.get().add(r0 * k), (r1 - r0) * k), std::slice::from_raw_parts_mut(s_ptr.get().add(r0), r1 - r0)) };
        int8_gemm::quantize_rows(&x[r0 * k..r1 * k], r1 - r0, k, q, s);
    });
    let macs = n.saturating_mul(o_dim).saturating_mul(k);
    // A batch-1 784 -> 512 (401k multiply-adds) stays on one thread: split, it measured slower on
    // the loaded 2-core machine (the fork, and waiting for a descheduled second thread).
    let threads = if macs < MIN_PARALLEL_MACS { 1 } else { parallel::num_threads() };
    let dst = SendPtr(out.as_mut_ptr());
    let value = |i: usize, j: usize, acc: i32| acc as f32 * xs[i] * scales[j] + bias.map_or(0.0, |b| b[j]);
    if n < PANEL_MIN_ROWS {
        let a = Int8Rows { data: &xq, rows: n, k, stride: k };
        let w = Int8Rows { data: q, rows: o_dim, k, stride: k };
        let sums = &packed.sums;
        // Column chunks of whole 4-row tiles, two per thread so a descheduled thread delays less.
        let tiles = o_dim.div_ceil(4);
        parallel::for_each_chunk(tiles, if threads > 1 { (threads * 2).min(tiles) } else { 1 }, |t0, t1| {
            int8_gemm::gemm(path, a, w, t0 * 4..(t1 * 4).min(o_dim), sums, |i, j, acc| {
                // SAFETY: i < n and j < o_dim (gemm's contract), and chunks own disjoint columns.
                unsafe { *dst.get().add(i * o_dim + j) = value(i, j, acc) };
            });
        });
        return;
    }
    let mut panel_bytes = vec![0u8; panels::panel_len(n, k)];
    panels::pack_rows(&xq, n, k, &mut panel_bytes);
    let w = packed.panel_rows(q);
    let shift = &packed.shifts;
    // Units: 64-lane groups of rows times slices of the output features, about two per thread.
    let groups = n.div_ceil(TILE_LANES);
    let slices = (threads * 2).div_ceil(groups).clamp(1, o_dim.div_ceil(4));
    let group_bytes = panels::panel_len(TILE_LANES, k);
    parallel::for_each_chunk(groups * slices, if threads > 1 { groups * slices } else { 1 }, |u0, u1| {
        for unit in u0..u1 {
            let (g, s) = (unit / slices, unit % slices);
            let lanes = TILE_LANES.min(n - g * TILE_LANES);
            let rows = o_dim * s / slices..o_dim * (s + 1) / slices;
            panels::gemm(path, &panel_bytes[g * group_bytes..], lanes, w, rows, shift, |o, l0, sums| {
                for (l, &acc) in sums.iter().enumerate().take(lanes.saturating_sub(l0)) {
                    let i = g * TILE_LANES + l0 + l;
                    // SAFETY: i < n, o < o_dim; units own disjoint (row group, feature slice) pairs.
                    unsafe { *dst.get().add(i * o_dim + o) = value(i, o, acc) };
                }
            });
        }
    });
}

/// A conv's input, quantized: each image to bytes (u8 = a + 128) with its own scale, stored
/// channel-last ([height, width, groups, channels per group rounded up to 4]) inside a border of
/// 128s (zero activations) wide enough for every tap. Channel-last makes 4 consecutive k of a
/// patch (4 channels of one tap) one 4-byte read, and the border means no bounds checks.
struct ByteImages {
    data: Vec<u8>,
    scales: Vec<f32>,
    /// Padded width, and bytes per pixel (groups · padded channels per group).
    wp: usize,
    pixel: usize,
    /// Bytes per image.
    len: usize,
}

/// Channels per group rounded up to 4 (one k-step of the panels).
fn padded_channels(g: &Geometry) -> usize {
    g.group_channels().div_ceil(4) * 4
}

impl ByteImages {
    fn new(g: &Geometry, x: &[f32], op: &str) -> Result<ByteImages> {
        let reach = |out: usize, s: usize, k: usize, d: usize| if out == 0 { 0 } else { (out - 1) * s + (k - 1) * d + 1 };
        let hp = (g.pad[0] + g.height).max(reach(g.out_height, g.stride[0], g.kernel[0], g.dilation[0]));
        let wp = (g.pad[1] + g.width).max(reach(g.out_width, g.stride[1], g.kernel[1], g.dilation[1]));
        let (gc, cp) = (g.group_channels(), padded_channels(g));
        let pixel = g.groups * cp;
        let (image, len) = (g.image_len(), hp * wp * pixel);
        let mut data = try_zeroed::<u8>(op, g.batch * len)?;
        data.fill(128);
        let mut scales = vec![0f32; g.batch];
        let (d_ptr, s_ptr) = (SendPtr(data.as_mut_ptr()), SendPtr(scales.as_mut_ptr()));
        let chunks = if g.batch * image >= 1 << 16 { parallel::num_threads().min(g.batch) } else { 1 };
        parallel::for_each_chunk(g.batch, chunks, |n0, n1| {
            let mut q = vec![0i8; image];
            for n in n0..n1 {
                // SAFETY: chunks own disjoint images n0..n1 of data and scales.
                let (dst, scale) = unsafe { (std::slice::from_raw_parts_mut(d_ptr.get().add(n * len), len), &mut *s_ptr.get().add(n)) };
                int8_gemm::quantize_rows(&x[n * image..(n + 1) * image], 1, image, &mut q, std::slice::from_mut(scale));
                for (c, plane) in q.chunks_exact(g.height * g.width).enumerate() {
                    let channel = c / gc * cp + c % gc;
                    for (y, row) in plane.chunks_exact(g.width).enumerate() {
                        let at = ((g.pad[0] + y) * wp + g.pad[1]) * pixel + channel;
                        for (xi, &v) in row.iter().enumerate() {
                            dst[at + xi * pixel] = (v as u8) ^ 0x80;
                        }
                    }
                }
            }
        });
        Ok(ByteImages { data, scales, wp, pixel, len })
    }
}

/// A conv's int8 filters `q` [out_channels, patch] in the panels' k order (`tap_major_filters`),
/// built on first use and kept with the tensor.
pub(crate) fn conv_filters(geo: &Geometry, q: &Tensor) -> Result<Arc<Int8Weights>> {
    let k = geo.kernel[0] * geo.kernel[1] * padded_channels(geo);
    Int8Weights::of_filters(q, geo.out_channels, k, geo.kernel, |q| tap_major_filters(geo, q))
}

/// The filters in the panels' k order: [out_channels, kh, kw, channels per group rounded up to
/// 4], zero in the padding channels. The sums are order-free integers, so reordering k in both
/// operands alike changes nothing but the memory access.
fn tap_major_filters(g: &Geometry, q: &[i8]) -> Vec<i8> {
    let ([kh, kw], cp, patch) = (g.kernel, padded_channels(g), g.patch());
    let k = kh * kw * cp;
    let mut out = vec![0i8; g.out_channels * k];
    for (dst, src) in out.chunks_exact_mut(k.max(1)).zip(q.chunks_exact(patch.max(1))) {
        for (i, &v) in src.iter().enumerate() {
            let (c, tap) = (i / (kh * kw), i % (kh * kw));
            dst[tap * cp + c] = v;
        }
    }
    out
}

/// conv2d_w8a8's output [batch, out_channels, out_height, out_width] for `input` [batch,
/// channels, height, width] and int8 filters (`conv_filters`) with `scales`.
pub(crate) fn conv(geo: &Geometry, input: &[f32], filters: &Int8Weights, scales: &[f32], bias: Option<&[f32]>, op: &str) -> Result<Vec<f32>> {
    let g = *geo;
    let mut out = try_zeroed::<f32>(op, g.batch * g.out_image_len())?;
    let (plane, cout, cp) = (g.out_plane(), g.group_out_channels(), padded_channels(&g));
    if out.is_empty() {
        return Ok(out);
    }
    let path = Int8Path::current();
    let images = ByteImages::new(&g, input, op)?;
    let k = g.kernel[0] * g.kernel[1] * cp;
    assert!(filters.rows == g.out_channels && filters.k == k, "{op}: packed filters of another shape");
    let w = filters.panel_rows(&[]);
    let shift = &filters.shifts;
    // Where each k-step (4 channels of one tap) of group 0 reads, from a position's corner.
    let (wp, pixel) = (images.wp, images.pixel);
    let steps: Vec<usize> = (0..g.kernel[0] * g.kernel[1])
        .flat_map(|tap| {
            let at = ((tap / g.kernel[1]) * g.dilation[0] * wp + tap % g.kernel[1] * g.dilation[1]) * pixel;
            (0..cp / 4).map(move |c4| at + 4 * c4)
        })
        .collect();
    // Units: (image, run of positions); long runs when the batch alone feeds every thread.
    let threads = parallel::num_threads();
    let target = if g.batch >= 2 * threads { 4 * TILE_LANES } else { TILE_LANES };
    let pieces = plane.div_ceil(target);
    let run = plane.div_ceil(pieces).div_ceil(LANES) * LANES;
    let units = g.batch * pieces;
    let parallel = g.macs() >= MIN_PARALLEL_MACS && threads > 1;
    let dst = SendPtr(out.as_mut_ptr());
    parallel::for_each_chunk(units, if parallel { units } else { 1 }, |u0, u1| {
        with_panels(panels::panel_len(run, k), |buf| {
            for unit in u0..u1 {
                let (n, p0) = (unit / pieces, unit % pieces * run);
                let lanes = run.min(plane - p0);
                let image = &images.data[n * images.len..(n + 1) * images.len];
                // Each lane's corner byte; lanes past the run repeat its last position.
                let corner: Vec<usize> = (0..lanes.div_ceil(LANES) * LANES)
                    .map(|l| {
                        let pos = p0 + l.min(lanes - 1);
                        (pos / g.out_width * g.stride[0] * wp + pos % g.out_width * g.stride[1]) * pixel
                    })
                    .collect();
                for grp in 0..g.groups {
                    gather(&image[grp * cp..], &corner, &steps, buf);
                    let rows = grp * cout..(grp + 1) * cout;
                    panels::gemm(path, buf, lanes, w, rows, shift, |oc, l0, sums| {
                        let (s, b) = (images.scales[n], bias.map(|b| b[oc]));
                        let at = (n * g.out_channels + oc) * plane + p0 + l0;
                        for (l, &acc) in sums.iter().enumerate().take(lanes.saturating_sub(l0)) {
                            let v = acc as f32 * s * scales[oc];
                            // SAFETY: p0 + l0 + l < plane; units own disjoint (image, positions).
                            unsafe { *dst.get().add(at + l) = b.map_or(v, |b| v + b) };
                        }
                    });
                }
            }
        });
    });
    Ok(out)
}

/// im2col into panels: k-step kq of lane l is the 4 bytes at image[corner[l] + steps[kq]].
fn gather(image: &[u8], corner: &[usize], steps: &[usize], panels: &mut [u8]) {
    let k4 = steps.len();
    let max = corner.iter().max().copied().unwrap_or(0) + steps.iter().max().copied().unwrap_or(0);
    assert!(corner.is_empty() || k4 == 0 || max + 4 <= image.len(), "conv2dW8A8: gather out of bounds");
    assert!(panels.len() >= corner.len() * k4 * 4, "conv2dW8A8: panels too small");
    for (blk, lanes) in corner.chunks_exact(LANES).enumerate() {
        let dst = &mut panels[blk * k4 * LANES * 4..(blk + 1) * k4 * LANES * 4];
        for (quad, &step) in dst.chunks_exact_mut(LANES * 4).zip(steps) {
            for (l, &c) in lanes.iter().enumerate() {
                // SAFETY: c + step + 4 <= max + 4 <= image.len() (asserted above).
                let v = unsafe { (image.as_ptr().add(c + step) as *const u32).read_unaligned() };
                quad[l * 4..l * 4 + 4].copy_from_slice(&v.to_ne_bytes());
            }
        }
    }
}
