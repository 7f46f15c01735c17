//! 2-D max and average pooling over [batch, channels, height, width] (NCHW, PyTorch's layout).
//!
//! Every (batch, channel) plane is independent, so planes are the unit of parallel work. Inside a
//! plane the loops run output row -> kernel row -> kernel column -> output column: the innermost
//! loop walks one input row with the pool's stride and one output row contiguously, with the
//! window's clipping to the input resolved beforehand into a range of output columns, so the hot
//! loop has no bounds tests and vectorizes. Visiting taps in (kernel row, kernel column) order
//! also gives max pooling PyTorch's tie rule for free: a later tap replaces the running maximum
//! only when strictly greater, so the first maximum of a window wins.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::multiversion;
use crate::parallel::{self, SendPtr};
use crate::storage::try_zeroed;
use crate::tensor::Tensor;

/// The window of a 2-D pooling: sizes are (height, width); padding is (top, bottom, left, right),
/// so TensorFlow's asymmetric "same" padding is expressible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
}

/// Where one axis's windows fall on the input: window `o` starts at `o * stride - pad_before` and
/// its taps `j` in `tap_range[o]` are the ones inside the input.
struct AxisPlan {
    len: usize,
    out: usize,
    stride: usize,
    dilation: usize,
    pad_before: usize,
    kernel: usize,
}

impl AxisPlan {
    /// Taps of window `o` that land inside the input: j in [lo, hi).
    fn taps(&self, o: usize) -> (usize, usize) {
        let start = (o * self.stride) as isize - self.pad_before as isize;
        let d = self.dilation as isize;
        let lo = if start < 0 { (-start + d - 1) / d } else { 0 };
        let last = self.len as isize - 1 - start; // taps at offset <= last are inside
        let hi = if last < 0 { 0 } else { (last / d + 1).min(self.kernel as isize) };
        (lo as usize, hi.max(lo) as usize)
    }

    /// Output positions whose tap `j` lands inside the input: o in [lo, hi).
    fn outputs_for_tap(&self, j: usize) -> (usize, usize) {
        // input index = o * stride + j * dilation - pad_before, must be in [0, len).
        let shift = (j * self.dilation) as isize - self.pad_before as isize;
        let s = self.stride as isize;
        let lo = if shift < 0 { (-shift + s - 1) / s } else { 0 };
        let last = self.len as isize - 1 - shift;
        let hi = if last < 0 { 0 } else { (last / s + 1).min(self.out as isize) };
        (lo as usize, hi.max(lo) as usize)
    }
}

/// The checked geometry of one pooling call.
struct Plan {
    planes: usize,
    rows: AxisPlan,
    cols: AxisPlan,
}

impl Plan {
    fn new(op: &str, x: &Tensor, p: &Pool2d) -> Result<Plan> {
        let describe = || format!("{} {}", x.dtype(), fmt_shape(x.shape()));
        if x.dtype() != DType::F32 || x.rank() != 4 {
            return Err(KilnError::new(op, format!("expected a float32 [batch, channels, height, width] tensor, got {}", describe())));
        }
        let window = format!(
            "kernel {}x{}, stride {}x{}, padding (top {}, bottom {}, left {}, right {}), dilation {}x{}",
            p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.padding[2], p.padding[3], p.dilation[0], p.dilation[1]
        );
        if p.kernel.contains(&0) || p.stride.contains(&0) || p.dilation.contains(&0) {
            return Err(KilnError::new(op, format!("kernel, stride and dilation must be >= 1, got {window}")));
        }
        let s = x.shape();
        let axis = |a: usize| -> Result<AxisPlan> {
            let len = s[2 + a];
            let (before, after) = (p.padding[2 * a], p.padding[2 * a + 1]);
            let extent = p.dilation[a].checked_mul(p.kernel[a] - 1).and_then(|e| e.checked_add(1));
            let padded = len.checked_add(before).and_then(|l| l.checked_add(after));
            let (Some(extent), Some(padded)) = (extent, padded) else {
                return Err(KilnError::new(op, format!("{window} overflows for input {}", describe())));
            };
            if extent > padded {
                return Err(KilnError::new(op, format!(
                    "the window ({window}) spans {extent} {} but the padded input {} has only {padded}",
                    if a == 0 { "rows" } else { "columns" }, describe()
                )));
            }
            Ok(AxisPlan { len, out: (padded - extent) / p.stride[a] + 1, stride: p.stride[a], dilation: p.dilation[a], pad_before: before, kernel: p.kernel[a] })
        };
        let plan = Plan { planes: s[0] * s[1], rows: axis(0)?, cols: axis(1)? };
        // A window that sees only padding has no maximum and no average of real values.
        for (a, ax) in [&plan.rows, &plan.cols].into_iter().enumerate() {
            if let Some(o) = (0..ax.out).find(|&o| { let (lo, hi) = ax.taps(o); lo >= hi }) {
                return Err(KilnError::new(op, format!(
                    "output {} {o} of input {} covers only padding ({window}); reduce the padding",
                    if a == 0 { "row" } else { "column" }, describe()
                )));
            }
        }
        Ok(plan)
    }

    fn in_plane(&self) -> usize {
        self.rows.len * self.cols.len
    }

    fn out_plane(&self) -> usize {
        self.rows.out * self.cols.out
    }

    fn out_shape(&self, x: &Tensor) -> [usize; 4] {
        [x.shape()[0], x.shape()[1], self.rows.out, self.cols.out]
    }

    /// For every kernel column that reads the input: (first output column, output columns, first
    /// input column), in kernel-column order (the tie rule of max pooling depends on it).
    fn column_runs(&self) -> Vec<(usize, usize, usize)> {
        (0..self.cols.kernel)
            .map(|kx| {
                let (lo, hi) = self.cols.outputs_for_tap(kx);
                (lo, hi - lo, (lo * self.cols.stride + kx * self.cols.dilation).saturating_sub(self.cols.pad_before))
            })
            .filter(|&(_, n, _)| n > 0)
            .collect()
    }

    /// For an output row: the input rows its window reads.
    fn input_rows(&self, oy: usize) -> impl Iterator<Item = usize> + '_ {
        let (lo, hi) = self.rows.taps(oy);
        (lo..hi).map(move |ky| oy * self.rows.stride + ky * self.rows.dilation - self.rows.pad_before)
    }
}

/// Runs `f(plane index, output plane, index plane)` over every plane, in parallel when the work
/// (`work_per_plane` elements touched per plane) is large. `out` holds `out_len` values per plane;
/// `idx` is empty or holds as many. Shared with batch_norm.rs, whose planes are (batch, channel) rows.
pub(crate) fn for_each_plane<T: Send + Copy>(planes: usize, work_per_plane: usize, out_len: usize, out: &mut [T], idx: &mut [i32], f: impl Fn(usize, &mut [T], &mut [i32]) + Sync + Send) {
    let out_ptr = SendPtr(out.as_mut_ptr());
    let idx_ptr = SendPtr(idx.as_mut_ptr());
    let idx_len = if idx.is_empty() { 0 } else { out_len };
    let run = |start: usize, end: usize| {
        for p in start..end {
            // SAFETY: plane p owns out[p*out_len..][..out_len] (and the same range of idx); no
            // other chunk touches it.
            let (o, i) = unsafe {
                (
                    std::slice::from_raw_parts_mut(out_ptr.get().add(p * out_len), out_len),
                    std::slice::from_raw_parts_mut(idx_ptr.get().add(p * idx_len), idx_len),
                )
            };
            f(p, o, i);
        }
    };
    let total = planes.saturating_mul(work_per_plane);
    if total < parallel::MIN_PARALLEL_ELEMENTS {
        run(0, planes);
    } else {
        parallel::for_each_chunk(planes, parallel::chunk_count(total), run);
    }
}

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
            for j in 0..LANES {
                // SAFETY: base + j·s < len, checked by lane_stride.
                acc[j] += unsafe { *padded.data.get_unchecked(base + j * s) };
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
    fn avg_plane_backward(plan: &Plan, runs: &[(usize, usize, usize)], scale: &[f32], g: &[f32], dst: &mut [f32]) {
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
    for o in 0..g.len() {
        // SAFETY: o·s <= (len − 1)·s < dst.len(), checked above.
        unsafe { *dst.get_unchecked_mut(o * s) += g[o] };
    }
}

/// Max pooling. x: [N, C, H, W] float32 -> [N, C, outH, outW] with
/// out = (in + padBefore + padAfter - dilation·(kernel - 1) - 1) / stride + 1 (floor).
/// Padding never wins (it acts as -inf). The gradient goes to the first maximum of each window.
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    const OP: &str = "maxPool2d";
    let plan = Plan::new(OP, x, &pool)?;
    let xs = x.materialize()?;
    let data = xs.contiguous_slice::<f32>().unwrap();
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    if in_plane > i32::MAX as usize {
        return Err(KilnError::new(OP, format!("planes of {} elements are too large (at most 2^31 - 1)", in_plane)));
    }
    let tracked = x.requires_grad() && autograd::is_enabled();
    let total = plan.planes * out_plane;
    let mut out = try_zeroed::<f32>(OP, total)?;
    let mut idx = if tracked { try_zeroed::<i32>(OP, total)? } else { Vec::new() };
    let work = out_plane * pool.kernel[0] * pool.kernel[1];
    for_each_plane(plan.planes, work, out_plane, &mut out, &mut idx, |p, out, idx| {
        PADDED_KEYS.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            let width = plan.pad_into(&mut buffer, &data[p * in_plane..(p + 1) * in_plane], PAD_KEY, max_key);
            max_plane(&plan, &PaddedPlane { data: &buffer, width }, out, idx);
        });
    });
    let out_shape = plan.out_shape(x);
    let y = Tensor::from_vec(out, &out_shape)?;
    if !tracked {
        return Ok(y);
    }
    let indices = Tensor::from_vec(idx, &out_shape)?;
    let planes = plan.planes;
    let in_shape = x.shape().to_vec();
    Ok(autograd::record(OP, &[x], &[&indices], y, move |g, saved, _needs| {
        let g = g.materialize()?;
        let gs = g.contiguous_slice::<f32>().unwrap();
        let idx = saved[0].contiguous_slice::<i32>().unwrap();
        let mut gx = try_zeroed::<f32>(OP, planes * in_plane)?;
        // Each plane's gradient is written only by that plane's outputs, so planes run in parallel.
        for_each_plane(planes, out_plane, in_plane, &mut gx, &mut [], |p, dst, _| {
            let range = p * out_plane..(p + 1) * out_plane;
            for (&i, &v) in idx[range.clone()].iter().zip(&gs[range]) {
                dst[i as usize] += v;
            }
        });
        Ok(vec![Some(Tensor::from_vec(gx, &in_shape)?)])
    }))
}

/// Average pooling. x: [N, C, H, W] float32 -> [N, C, outH, outW] (sizes as max_pool2d). With
/// `count_include_pad` every window divides by kernelH·kernelW (PyTorch's default); without, by
/// the number of its taps inside the input (TensorFlow's "same" padding).
pub fn avg_pool2d(x: &Tensor, pool: Pool2d, count_include_pad: bool) -> Result<Tensor> {
    const OP: &str = "avgPool2d";
    let plan = Plan::new(OP, x, &pool)?;
    let xs = x.materialize()?;
    let data = xs.contiguous_slice::<f32>().unwrap();
    let (in_plane, out_plane) = (plan.in_plane(), plan.out_plane());
    let scale = divisors(&plan, count_include_pad);
    let mut out = try_zeroed::<f32>(OP, plan.planes * out_plane)?;
    let work = out_plane * pool.kernel[0] * pool.kernel[1];
    for_each_plane(plan.planes, work, out_plane, &mut out, &mut [], |p, out, _| {
        PADDED_VALUES.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            let width = plan.pad_into(&mut buffer, &data[p * in_plane..(p + 1) * in_plane], 0.0, |v| v);
            avg_plane(&plan, &scale, &PaddedPlane { data: &buffer, width }, out);
        });
    });
    let y = Tensor::from_vec(out, &plan.out_shape(x))?;
    if !(x.requires_grad() && autograd::is_enabled()) {
        return Ok(y);
    }
    let in_shape = x.shape().to_vec();
    let runs = plan.column_runs();
    Ok(autograd::record(OP, &[x], &[], y, move |g, _saved, _needs| {
        let g = g.materialize()?;
        let gs = g.contiguous_slice::<f32>().unwrap();
        let mut gx = try_zeroed::<f32>(OP, plan.planes * in_plane)?;
        for_each_plane(plan.planes, work, in_plane, &mut gx, &mut [], |p, dst, _| {
            avg_plane_backward(&plan, &runs, &scale, &gs[p * out_plane..(p + 1) * out_plane], dst);
        });
        Ok(vec![Some(Tensor::from_vec(gx, &in_shape)?)])
    }))
}

/// 1 / divisor for every output position of a plane.
fn divisors(plan: &Plan, count_include_pad: bool) -> Vec<f32> {
    let count = |ax: &AxisPlan, o: usize| if count_include_pad { ax.kernel } else { let (lo, hi) = ax.taps(o); hi - lo };
    let mut out = Vec::with_capacity(plan.out_plane());
    for oy in 0..plan.rows.out {
        for ox in 0..plan.cols.out {
            out.push(1.0 / (count(&plan.rows, oy) * count(&plan.cols, ox)) as f32);
        }
    }
    out
}
