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

    /// For every kernel column: (first output column, output columns, first input column).
    fn column_runs(&self) -> Vec<(usize, usize, usize)> {
        (0..self.cols.kernel)
            .map(|kx| {
                let (lo, hi) = self.cols.outputs_for_tap(kx);
                let first_input = (lo * self.cols.stride + kx * self.cols.dilation).saturating_sub(self.cols.pad_before);
                (lo, hi - lo, first_input)
            })
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

multiversion! {
    /// out[o] = max(out[o], src[o * stride]) over a run; NaN wins over numbers (it propagates).
    fn max_run(src: &[f32], stride: usize, out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(src.iter().step_by(stride)) {
            if *v > *o || (v.is_nan() && !o.is_nan()) {
                *o = *v;
            }
        }
    }
}

multiversion! {
    /// As max_run, also recording the winner's flat index in the plane (first + o * stride).
    fn max_run_indexed(src: &[f32], stride: usize, out: &mut [f32], idx: &mut [i32], first: i32) {
        let step = stride as i32;
        for (o, ((m, i), v)) in out.iter_mut().zip(idx.iter_mut()).zip(src.iter().step_by(stride)).enumerate() {
            if *v > *m || (v.is_nan() && !m.is_nan()) {
                *m = *v;
                *i = first + o as i32 * step;
            }
        }
    }
}

multiversion! {
    /// out[o] += src[o * stride] over a run.
    fn add_run(src: &[f32], stride: usize, out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(src.iter().step_by(stride)) {
            *o += *v;
        }
    }
}

multiversion! {
    /// dst[o * stride] += g[o] over a run (the transpose of add_run).
    fn scatter_add_run(g: &[f32], stride: usize, dst: &mut [f32]) {
        for (v, d) in g.iter().zip(dst.iter_mut().step_by(stride)) {
            *d += *v;
        }
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
    let runs = plan.column_runs();
    let (w, ow, sx) = (plan.cols.len, plan.cols.out, plan.cols.stride);
    let work = out_plane * pool.kernel[0] * pool.kernel[1];
    for_each_plane(plan.planes, work, out_plane, &mut out, &mut idx, |p, out, idx| {
        let plane = &data[p * in_plane..(p + 1) * in_plane];
        out.fill(f32::NEG_INFINITY);
        for oy in 0..plan.rows.out {
            let o_row = &mut out[oy * ow..(oy + 1) * ow];
            for iy in plan.input_rows(oy) {
                let row = &plane[iy * w..(iy + 1) * w];
                for &(lo, n, first) in &runs {
                    if n == 0 {
                        continue;
                    }
                    let src = &row[first..];
                    if tracked {
                        let i_row = &mut idx[oy * ow + lo..oy * ow + lo + n];
                        max_run_indexed(src, sx, &mut o_row[lo..lo + n], i_row, (iy * w + first) as i32);
                    } else {
                        max_run(src, sx, &mut o_row[lo..lo + n]);
                    }
                }
            }
        }
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
    let runs = plan.column_runs();
    let (w, ow, sx) = (plan.cols.len, plan.cols.out, plan.cols.stride);
    let work = out_plane * pool.kernel[0] * pool.kernel[1];
    for_each_plane(plan.planes, work, out_plane, &mut out, &mut [], |p, out, _| {
        let plane = &data[p * in_plane..(p + 1) * in_plane];
        for oy in 0..plan.rows.out {
            let o_row = &mut out[oy * ow..(oy + 1) * ow];
            for iy in plan.input_rows(oy) {
                let row = &plane[iy * w..(iy + 1) * w];
                for &(lo, n, first) in &runs {
                    if n > 0 {
                        add_run(&row[first..], sx, &mut o_row[lo..lo + n]);
                    }
                }
            }
        }
        out.iter_mut().zip(&scale).for_each(|(o, s)| *o *= s);
    });
    let y = Tensor::from_vec(out, &plan.out_shape(x))?;
    if !(x.requires_grad() && autograd::is_enabled()) {
        return Ok(y);
    }
    let in_shape = x.shape().to_vec();
    Ok(autograd::record(OP, &[x], &[], y, move |g, _saved, _needs| {
        let g = g.materialize()?;
        let gs = g.contiguous_slice::<f32>().unwrap();
        let mut gx = try_zeroed::<f32>(OP, plan.planes * in_plane)?;
        for_each_plane(plan.planes, work, in_plane, &mut gx, &mut [], |p, dst, _| {
            let mut scaled = vec![0.0f32; ow];
            for oy in 0..plan.rows.out {
                let g_row = &gs[p * out_plane + oy * ow..][..ow];
                scaled.iter_mut().zip(g_row.iter().zip(&scale[oy * ow..])).for_each(|(d, (g, s))| *d = g * s);
                for iy in plan.input_rows(oy) {
                    let row = &mut dst[iy * w..(iy + 1) * w];
                    for &(lo, n, first) in &runs {
                        if n > 0 {
                            scatter_add_run(&scaled[lo..lo + n], sx, &mut row[first..]);
                        }
                    }
                }
            }
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
