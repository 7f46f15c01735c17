//! W8A8: int8 weights times int8 activations, for `linear_w8a8` (linear.rs) and `conv2d_w8a8`
//! (conv.rs). The float input is quantized per call with one dynamic scale per activation vector
//! (a Linear's input row, a conv's output position), the products accumulate exactly in i32
//! (int8_gemm.rs), and each output is acc · activation scale · weight scale (+ bias).
//!
//! Why one scale per vector rather than one per tensor: it costs the same (the scale is applied
//! once per output either way), it is more accurate for rows of different magnitudes, and a
//! sample's result does not depend on what else is in its batch.

use super::int8_gemm::{self, Int8Path, Int8Rows};
use crate::device::cpu::gemm_call::Parallelism;
use crate::device::cpu::conv::engine::{Filters, Mat};
use crate::ops::conv::Geometry;
use crate::parallel::{self, SendPtr};

/// Below this many multiply-adds the linear runs on one thread (as linear.rs).
const MIN_PARALLEL_MACS: usize = 96 * 96 * 96;

/// out[n, o] = x[n, :] · W[o, :] + bias[o] with x quantized per row. x [n, k] float32, q [o_dim, k]
/// int8 with `scales` [o_dim]; out [n, o_dim].
pub(super) fn linear(x: &[f32], n: usize, k: usize, q: &[i8], scales: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let o_dim = scales.len();
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
    let a = Int8Rows { data: &xq, rows: n, k, stride: k };
    let w = Int8Rows { data: q, rows: o_dim, k, stride: k };
    let sums = if path == Int8Path::Vnni { int8_gemm::weight_sums(w) } else { Vec::new() };
    let macs = n.saturating_mul(o_dim).saturating_mul(k);
    // Column chunks of whole 4-row tiles, two per thread so a descheduled thread delays less.
    let tiles = o_dim.div_ceil(4);
    let chunks = if macs < MIN_PARALLEL_MACS { 1 } else { (parallel::num_threads() * 2).min(tiles) };
    let dst = SendPtr(out.as_mut_ptr());
    assert!(out.len() >= n * o_dim);
    parallel::for_each_chunk(tiles, chunks, |t0, t1| {
        let cols = t0 * 4..(t1 * 4).min(o_dim);
        int8_gemm::gemm(path, a, w, cols, &sums, |i, j, acc| {
            let v = acc as f32 * xs[i] * scales[j] + bias.map_or(0.0, |b| b[j]);
            // SAFETY: i < n and j < o_dim (gemm's contract), and chunks own disjoint columns.
            unsafe { *dst.get().add(i * o_dim + j) = v };
        });
    });
}

/// Quantized conv filters for the conv engine, multiplied as int8 against each band's im2col
/// columns quantized per output position.
pub(super) struct Int8Filters<'a> {
    pub q: &'a [i8],
    pub scales: &'a [f32],
    /// `weight_sums` of every filter row (VNNI path only), computed once per call.
    pub sums: Vec<i32>,
    pub path: Int8Path,
}

impl<'a> Int8Filters<'a> {
    pub fn new(q: &'a [i8], scales: &'a [f32], patch: usize) -> Int8Filters<'a> {
        let path = Int8Path::current();
        let w = Int8Rows { data: q, rows: scales.len(), k: patch, stride: patch };
        let sums = if path == Int8Path::Vnni { int8_gemm::weight_sums(w) } else { Vec::new() };
        Int8Filters { q, scales, sums, path }
    }
}

impl Filters for Int8Filters<'_> {
    fn scratch_len(&self, _: &Geometry) -> usize {
        0
    }

    unsafe fn apply(&self, geo: &Geometry, grp: usize, x: Mat, dst: *mut f32, dst_stride: usize, accumulate: bool, _: &mut [f32], _: Parallelism) {
        let (cout, patch) = (geo.group_out_channels(), geo.patch());
        let (data, rows, cols, row_stride) = x.parts();
        assert!(rows == patch && (rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len()));
        // The band's columns become int8 rows (one per output position, `patch` long).
        let mut xq = vec![0i8; cols * patch];
        let (mut xs, mut inv) = (vec![0f32; cols], vec![0f32; cols]);
        int8_gemm::quantize_columns(data, rows, cols, row_stride, &mut xq, &mut xs, &mut inv);
        let first = grp * cout;
        let a = Int8Rows { data: &xq, rows: cols, k: patch, stride: patch };
        let w = Int8Rows { data: &self.q[first * patch..], rows: cout, k: patch, stride: patch };
        let sums = if self.path == Int8Path::Vnni { &self.sums[first..first + cout] } else { &[][..] };
        int8_gemm::gemm(self.path, a, w, 0..cout, sums, |c, o, acc| {
            let v = acc as f32 * xs[c] * self.scales[first + o];
            // SAFETY: the engine hands this call rows o < cout of `cols` outputs at dst_stride.
            let out = unsafe { &mut *dst.add(o * dst_stride + c) };
            *out = if accumulate { *out + v } else { v };
        });
    }
}
