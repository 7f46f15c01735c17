//! The per-plane kernels of pooling: forward max and average over a padded copy of the plane,
//! and the backward of average pooling. (Max pooling's backward is a scatter by the saved
//! indices, in mod.rs.)

use crate::params::pool::{AxisPlan, Plan};
use crate::multiversion;

// ---- forward: windows in vector lanes over a padded copy of the plane ----
// Output rows are short in CNNs (7 to 28 values). Each plane is first copied into a buffer with
// a border wide enough that every window of the pool, and every lane of the last, partial group,
// lies inside it. Then LANES adjacent windows of an output row are computed at once, one per
// vector lane, their running maxima or sums in registers: each kernel tap is one strided read of
// LANES values, with no bound or border test.
//
// Max pooling runs on order-preserving integer keys of the values (see `max_key`): the maximum
// with its first argmax is then an integer max plus one select per tap, which vectorizes
// cleanly. The float version needs NaN and tie logic per lane and measured 3-5x slower (LLVM
// split it into part-scalar code, or turned "keep the larger" into a mispredicted branch).

/// Windows computed together, one per vector lane (a full AVX-512 register of f32).
const LANES: usize = 16;

/// The padded copy of one plane: `pad_top` rows and `pad_left` columns of fill before the
/// input, and enough after it. Borrowed from a per-thread buffer, so planes cost no allocation.
struct PaddedPlane<'a, T> {
    data: &'a [T],
    width: usize,
}

thread_local! {
    static PADDED_VALUES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PADDED_KEYS: std::cell::RefCell<Vec<i32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An integer whose signed order is the order of the floats, with every NaN above +inf: the
/// bits of a positive float already order as integers; a negative float's order is reversed, so
/// its non-sign bits are flipped. -0 becomes +0 first (`v + 0.0`), so the two still tie.
#[inline(always)]
fn max_key(v: f32) -> i32 {
    let b = (v + 0.0).to_bits() as i32;
    let key = b ^ ((b >> 31) as u32 >> 1) as i32;
    if v.is_nan() { i32::MAX } else { key }
}

/// The float of a key (the flip is its own inverse; i32::MAX comes back as a NaN).
#[inline(always)]
fn key_value(k: i32) -> f32 {
    f32::from_bits((k ^ ((k >> 31) as u32 >> 1) as i32) as u32)
}

/// Padding of max pooling: below every key, so it never wins, not even over -inf.
const PAD_KEY: i32 = i32::MIN;

impl Plan {
    /// Output columns rounded up to whole groups of LANES.
    fn lane_columns(&self) -> usize {
        self.cols.out.div_ceil(LANES) * LANES
    }

    /// Fills `buffer` with the padded copy of `plane` (values through `map`), returns its width.
    fn pad_into<T: Copy>(&self, buffer: &mut Vec<T>, plane: &[f32], fill: T, map: impl Fn(f32) -> T) -> usize {
        let (r, c) = (&self.rows, &self.cols);
        let reach = |ax: &AxisPlan, outs: usize| (outs - 1) * ax.stride + (ax.kernel - 1) * ax.dilation + 1;
        let width = reach(c, self.lane_columns()).max(c.pad_before + c.len);
        let height = reach(r, r.out).max(r.pad_before + r.len);
        // Every element is written once: the fill around, the (mapped) input inside.
        buffer.resize(width * height, fill);
        for (y, row) in buffer.chunks_exact_mut(width).enumerate() {
            match y.checked_sub(r.pad_before).filter(|&iy| iy < r.len) {
                Some(iy) => {
                    let (before, rest) = row.split_at_mut(c.pad_before);
                    let (inside, after) = rest.split_at_mut(c.len);
                    before.fill(fill);
                    inside.iter_mut().zip(&plane[iy * c.len..(iy + 1) * c.len]).for_each(|(d, &v)| *d = map(v));
                    after.fill(fill);
                }
                None => row.fill(fill),
            }
        }
        width
    }
}

/// Where tap (ky, kx) of the windows of output row `oy` starting at output column `ox0` reads:
/// (offset in the padded plane, index in the input plane). The input index wraps ("negative")
/// for taps in the padding; padding never wins a maximum, so such an index is never kept.
#[inline(always)]
fn tap_base(plan: &Plan, padded_width: usize, oy: usize, ox0: usize, ky: usize, kx: usize) -> (usize, usize) {
    let (r, c) = (&plan.rows, &plan.cols);
    let py = oy * r.stride + ky * r.dilation;
    let px = ox0 * c.stride + kx * c.dilation;
    (py * padded_width + px, (py * c.len + px).wrapping_sub(r.pad_before * c.len + c.pad_before))
}

/// The stride of the lanes' reads: S when it is a compile-time constant (1, 2), else `stride`.
/// Checks once that LANES reads from `base` stay inside `len`, so the loops can skip the test.
#[inline(always)]
fn lane_stride<const S: usize>(stride: usize, base: usize, len: usize) -> usize {
    let s = if S == 0 { stride } else { S };
    assert!(base + (LANES - 1) * s < len, "pooling lanes out of bounds");
    s
}

/// Max of LANES windows of one output row; with TRACK, also each first argmax (an index into the
/// input plane). Strictly-greater keys replace the running maximum, so the first of equal maxima
/// stays (PyTorch's tie rule) and so does the first NaN; the first in-input tap always beats the
/// initial PAD_KEY, so every window gets an index even when all its values are -inf.
#[inline(always)]
fn max_lanes<const S: usize, const TRACK: bool>(plan: &Plan, padded: &PaddedPlane<'_, i32>, oy: usize, ox0: usize, out: &mut [f32], idx: &mut [i32]) {
    let s = plan.cols.stride;
    let mut m = [PAD_KEY; LANES];
    let mut best = [0i32; LANES];
    // Row-major kernel order: the tie rule depends on it.
    for ky in 0..plan.rows.kernel {
        for kx in 0..plan.cols.kernel {
            let (base, input) = tap_base(plan, padded.width, oy, ox0, ky, kx);
            let s = lane_stride::<S>(s, base, padded.data.len());
            for j in 0..LANES {
                // SAFETY: base + j·s < len, checked by lane_stride.
                let k = unsafe { *padded.data.get_unchecked(base + j * s) };
                if TRACK {
                    let take = k > m[j];
                    best[j] = if take { (input as i32).wrapping_add((j * s) as i32) } else { best[j] };
                }
                m[j] = m[j].max(k);
            }
        }
    }
    for (o, &k) in out.iter_mut().zip(&m) {
        *o = key_value(k);
    }
    if TRACK {
        idx.iter_mut().zip(&best).for_each(|(d, &b)| *d = b);
    }
}

/// Sums of LANES windows of one output row, times each window's scale (1 / divisor).
#[inline(always)]
fn sum_lanes<const S: usize>(plan: &Plan, padded: &PaddedPlane<'_, f32>, oy: usize, ox0: usize, scale: &[f32], out: &mut [f32]) {
    let mut acc = [0.0f32; LANES];
    for ky in 0..plan.rows.kernel {
        for kx in 0..plan.cols.kernel {
            let base = tap_base(plan, padded.width, oy, ox0, ky, kx).0;
            let s = lane_stride::<S>(plan.cols.stride, base, padded.data.len());
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: base + j·s < len, checked by lane_stride.
                *a += unsafe { *padded.data.get_unchecked(base + j * s) };
            }
        }
    }
    for ((o, a), s) in out.iter_mut().zip(acc).zip(scale) {
        *o = a * s;
    }
}

/// Runs `$f::<S, ...>(args)` with S the column stride as a constant when it is 1 or 2, else 0.
macro_rules! by_stride {
    ($stride:expr, $f:ident::<$($t:tt),*>($($arg:expr),*)) => {
        match $stride {
            1 => $f::<1, $($t),*>($($arg),*),
            2 => $f::<2, $($t),*>($($arg),*),
            _ => $f::<0, $($t),*>($($arg),*),
        }
    };
    ($stride:expr, $f:ident($($arg:expr),*)) => {
        match $stride {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            _ => $f::<0>($($arg),*),
        }
    };
}

multiversion! {
    /// Max over every window of one plane (as keys, padded); `idx` (empty when untracked) gets
    /// the winners' indices.
    fn max_plane(plan: &Plan, padded: &PaddedPlane<'_, i32>, out: &mut [f32], idx: &mut [i32]) {
        let ow = plan.cols.out;
        for oy in 0..plan.rows.out {
            for ox0 in (0..ow).step_by(LANES) {
                let range = oy * ow + ox0..oy * ow + (ox0 + LANES).min(ow);
                if idx.is_empty() {
                    by_stride!(plan.cols.stride, max_lanes::<false>(plan, padded, oy, ox0, &mut out[range], &mut []));
                } else {
                    by_stride!(plan.cols.stride, max_lanes::<true>(plan, padded, oy, ox0, &mut out[range.clone()], &mut idx[range]));
                }
            }
        }
    }
}

multiversion! {
    /// Window sums of one plane, times `scale` (1 / divisor per output).
    fn avg_plane(plan: &Plan, scale: &[f32], padded: &PaddedPlane<'_, f32>, out: &mut [f32]) {
        let ow = plan.cols.out;
        for oy in 0..plan.rows.out {
            for ox0 in (0..ow).step_by(LANES) {
                let range = oy * ow + ox0..oy * ow + (ox0 + LANES).min(ow);
                by_stride!(plan.cols.stride, sum_lanes(plan, padded, oy, ox0, &scale[range.clone()], &mut out[range]));
            }
        }
    }
}

// ---- backward of average pooling: runs ----
// A run is one input row written with the pool's stride from a stretch of one output row.

multiversion! {
    /// The input gradient of avg_plane: each output's gradient, scaled, spread over its window.
    pub(crate) fn avg_plane_backward(plan: &Plan, runs: &[(usize, usize, usize)], scale: &[f32], g: &[f32], dst: &mut [f32]) {
        let (w, ow, sx) = (plan.cols.len, plan.cols.out, plan.cols.stride);
        let mut scaled = vec![0.0f32; ow];
        for oy in 0..plan.rows.out {
            let row_range = oy * ow..(oy + 1) * ow;
            scaled.iter_mut().zip(g[row_range.clone()].iter().zip(&scale[row_range])).for_each(|(d, (g, s))| *d = g * s);
            for iy in plan.input_rows(oy) {
                let row = &mut dst[iy * w..(iy + 1) * w];
                for &(lo, n, first) in runs {
                    by_stride!(sx, scatter_add_run(&scaled[lo..lo + n], sx, &mut row[first..]));
                }
            }
        }
    }
}

/// dst[o·s] += g[o] over a run.
#[inline(always)]
fn scatter_add_run<const S: usize>(g: &[f32], stride: usize, dst: &mut [f32]) {
    let s = if S == 0 { stride } else { S };
    assert!(g.is_empty() || (g.len() - 1) * s < dst.len(), "pooling run out of bounds");
    for (o, &v) in g.iter().enumerate() {
        // SAFETY: o·s <= (len − 1)·s < dst.len(), checked above.
        unsafe { *dst.get_unchecked_mut(o * s) += v };
    }
}

/// Max pooling of one plane: `out` gets the maxima, `idx` (empty when untracked) the first argmaxes.
pub(crate) fn max_pool_plane(plan: &Plan, plane: &[f32], out: &mut [f32], idx: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if super::avx512::applies(plan) {
        return super::avx512::max_plane(plan, plane, out, idx);
    }
    #[cfg(target_arch = "wasm32")]
    if idx.is_empty() && super::simd128::applies(plan) {
        return super::simd128::max_plane(plan, plane, out);
    }
    PADDED_KEYS.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let width = plan.pad_into(&mut buffer, plane, PAD_KEY, max_key);
        max_plane(plan, &PaddedPlane { data: &buffer, width }, out, idx);
    });
}

/// Average pooling of one plane; `scale` holds 1 / divisor per output.
pub(crate) fn avg_pool_plane(plan: &Plan, scale: &[f32], plane: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::avx512::applies(plan) {
        return super::avx512::avg_plane(plan, scale, plane, out);
    }
    #[cfg(target_arch = "wasm32")]
    if super::simd128::applies(plan) {
        return super::simd128::avg_plane(plan, scale, plane, out);
    }
    PADDED_VALUES.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let width = plan.pad_into(&mut buffer, plane, 0.0, |v| v);
        avg_plane(plan, scale, &PaddedPlane { data: &buffer, width }, out);
    });
}
