//! Forward max and average pooling of one plane on wasm32, with SIMD128: 4 adjacent windows of
//! an output row in the 4 lanes of a vector, read straight from the plane.
//!
//! Why not kernels.rs's path on wasm32: it copies every plane into a padded buffer (as integer
//! keys for max pooling) and reads LANES windows with strided scalar loads, which SIMD128 cannot
//! gather; measured slower than tfjs-backend-wasm's XNNPACK. Here a window's taps are whole
//! vector loads: contiguous for stride 1, and for stride 2 two loads whose even lanes are the 4
//! windows' values (one shuffle). Rows outside the input (top and bottom padding) are skipped,
//! so no copy is needed; `applies` leaves left and right padding to kernels.rs.
//!
//! Max pooling uses `f32x4.pmax` (one `maxps`), and redoes a plane in which it read a NaN with
//! `f32x4.max`, which returns NaN if either operand is NaN: NaN wins, as on the key path. It adds +0 at the end so that a window of -0s gives +0, as the key
//! path's ordering of -0 with +0 does. Only the values: the argmax indices (training) stay on keys.

use crate::params::pool::Plan;
use core::arch::wasm32::*;

/// Whether this plan's windows all lie inside their rows (no left or right padding): the case
/// handled here.
pub(crate) fn applies(plan: &Plan) -> bool {
    let c = &plan.cols;
    c.pad_before == 0 && c.out > 0 && (c.out - 1) * c.stride + (c.kernel - 1) * c.dilation < c.len
}

/// How windows combine: the lane-wise and scalar reductions, their start, and the last step.
trait Reduce {
    const INIT: f32;
    /// Whether `pool_plane` should report a NaN among the values read (`lanes` would drop it).
    const PROBES_NAN: bool = false;
    fn lanes(a: v128, b: v128) -> v128;
    fn scalar(a: f32, b: f32) -> f32;
    /// The output from the reduced window and its scale (1 / divisor for averages).
    fn finish(acc: v128, scale: v128) -> v128;
}

/// Max with NaN propagation: `f32x4.max` (V8 lowers it to about 8 instructions, to get NaN and
/// -0 right), for planes that hold a NaN.
struct Max;
impl Reduce for Max {
    const INIT: f32 = f32::NEG_INFINITY;
    fn lanes(a: v128, b: v128) -> v128 {
        f32x4_max(a, b)
    }
    fn scalar(a: f32, b: f32) -> f32 {
        if a.is_nan() || b.is_nan() { f32::NAN } else { a.max(b) }
    }
    fn finish(acc: v128, _: v128) -> v128 {
        f32x4_add(acc, f32x4_splat(0.0))
    }
}

/// Max of NaN-free values: `f32x4.pmax` (`a < b ? b : a`, one `maxps`), which would drop a NaN:
/// `pool_plane` reports one, and the plane is redone with `Max`. Measured 2x faster than
/// `f32x4.max` in the 2x2 pool.
struct MaxOfNumbers;
impl Reduce for MaxOfNumbers {
    const INIT: f32 = f32::NEG_INFINITY;
    const PROBES_NAN: bool = true;
    fn lanes(a: v128, b: v128) -> v128 {
        f32x4_pmax(a, b)
    }
    fn scalar(a: f32, b: f32) -> f32 {
        a.max(b)
    }
    fn finish(acc: v128, _: v128) -> v128 {
        f32x4_add(acc, f32x4_splat(0.0))
    }
}

struct Sum;
impl Reduce for Sum {
    const INIT: f32 = 0.0;
    fn lanes(a: v128, b: v128) -> v128 {
        f32x4_add(a, b)
    }
    fn scalar(a: f32, b: f32) -> f32 {
        a + b
    }
    fn finish(acc: v128, scale: v128) -> v128 {
        f32x4_mul(acc, scale)
    }
}

/// Values `p[0], p[S], p[2S], p[3S]`: one load for S = 1, two loads and a shuffle for S = 2,
/// four scalar loads otherwise (S = 0: the run-time `stride`).
///
/// SAFETY: p must be valid for reading p[0..4S] (p[0..8] for S = 2; p[0..3·stride + 1] for S = 0).
#[inline(always)]
unsafe fn gather<const S: usize>(p: *const f32, stride: usize) -> v128 {
    match S {
        1 => v128_load(p as *const v128),
        2 => i32x4_shuffle::<0, 2, 4, 6>(v128_load(p as *const v128), v128_load(p.add(4) as *const v128)),
        _ => f32x4(*p, *p.add(stride), *p.add(2 * stride), *p.add(3 * stride)),
    }
}

/// Every output of one plane. Returns whether a NaN was read, for `R::PROBES_NAN` (else false):
/// the loaded vectors of a group are summed and the sum tested, so a NaN (or +inf meeting -inf,
/// which only costs a needless exact rerun) shows up for 2 instructions per group.
#[inline(always)]
fn pool_plane<R: Reduce, const S: usize>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) -> bool {
    let (r, c) = (&plan.rows, &plan.cols);
    let (s, d, kw, w) = (c.stride, c.dilation, c.kernel, c.len);
    // Stride 2 with every tap within 2 columns of the window's start (2x2, 3x3): the pair path.
    let pairs = S == 2 && (kw - 1) * d <= 2;
    // The highest float a vector group reads, from its first window's start.
    let reach = match (pairs, S) {
        (true, _) if (kw - 1) * d == 2 => 11,
        (true, _) => 7,
        (_, 2) => 6 + (kw - 1) * d + 1,
        _ => 3 * s + (kw - 1) * d,
    };
    let mut nan = f32x4_splat(0.0);
    let mut nan_scalar = false;
    for oy in 0..r.out {
        let (ky0, ky1) = r.taps(oy);
        let taps_y = ky1 - ky0;
        // Input rows of this output row, top padding skipped.
        let first_row = (oy * r.stride + ky0 * r.dilation).saturating_sub(r.pad_before);
        let row_at = |ky: usize| (first_row + ky * r.dilation) * w;
        let out_row = &mut out[oy * c.out..(oy + 1) * c.out];
        let scale_row = if scale.is_empty() { scale } else { &scale[oy * c.out..(oy + 1) * c.out] };
        // Whether the group of windows ox..ox+4 reads only inside the plane (the last row's last
        // group may not).
        let fits = |ox: usize| ox + 4 <= c.out && row_at(taps_y.saturating_sub(1)) + ox * s + reach < plane.len();
        // The 4 outputs from ox, and the sum of the vectors read.
        let group = |ox: usize| -> (v128, v128) {
            let mut probe = f32x4_splat(0.0);
            let mut acc = f32x4_splat(R::INIT);
            // SAFETY (every load): `fits(ox)` holds, so the highest read is inside the plane.
            let load = |at: usize, probe: &mut v128| {
                let v = unsafe { v128_load(plane.as_ptr().add(at) as *const v128) };
                if R::PROBES_NAN {
                    *probe = f32x4_add(*probe, v);
                }
                v
            };
            if pairs && taps_y > 0 {
                // Stride 2, taps at column offsets 0..=2: combine the rows' loads first, then
                // take the taps' lanes out of the combined vectors with shuffles.
                let p = row_at(0) + 2 * ox;
                let (mut a, mut b) = (load(p, &mut probe), load(p + 4, &mut probe));
                let mut c8 = if reach > 7 { load(p + 8, &mut probe) } else { acc };
                for ky in 1..taps_y {
                    let p = row_at(ky) + 2 * ox;
                    a = R::lanes(a, load(p, &mut probe));
                    b = R::lanes(b, load(p + 4, &mut probe));
                    if reach > 7 {
                        c8 = R::lanes(c8, load(p + 8, &mut probe));
                    }
                }
                let even = i32x4_shuffle::<0, 2, 4, 6>(a, b);
                acc = even;
                for kx in 1..kw {
                    acc = R::lanes(acc, if kx * d == 1 { i32x4_shuffle::<1, 3, 5, 7>(a, b) } else { i32x4_shuffle::<1, 2, 3, 4>(even, c8) });
                }
            } else {
                for ky in 0..taps_y {
                    let row = row_at(ky) + ox * s;
                    for kx in 0..kw {
                        let v = unsafe { gather::<S>(plane.as_ptr().add(row + kx * d), s) };
                        if R::PROBES_NAN {
                            probe = f32x4_add(probe, v);
                        }
                        acc = R::lanes(acc, v);
                    }
                }
            }
            let sc = if scale_row.is_empty() { f32x4_splat(1.0) } else { unsafe { v128_load(scale_row.as_ptr().add(ox) as *const v128) } };
            (R::finish(acc, sc), probe)
        };
        let mut ox = 0;
        while fits(ox) {
            let (v, probe) = group(ox);
            // SAFETY: ox + 4 <= out_row.len().
            unsafe { v128_store(out_row.as_mut_ptr().add(ox) as *mut v128, v) };
            nan = v128_or(nan, f32x4_ne(probe, probe));
            ox += 4;
        }
        // A partial last group: the 4 windows ending at the row's end (recomputing a few).
        if ox < c.out && c.out >= 4 && fits(c.out - 4) {
            let (v, probe) = group(c.out - 4);
            unsafe { v128_store(out_row.as_mut_ptr().add(c.out - 4) as *mut v128, v) };
            nan = v128_or(nan, f32x4_ne(probe, probe));
            ox = c.out;
        }
        for (o, dst) in out_row.iter_mut().enumerate().skip(ox) {
            let sc = if scale_row.is_empty() { 1.0 } else { scale_row[o] };
            let (v, has_nan) = scalar_window::<R>(plane, (0..taps_y).map(row_at), o * s, kw, d, sc);
            *dst = v;
            nan_scalar |= has_nan;
        }
    }
    R::PROBES_NAN && (v128_any_true(nan) || nan_scalar)
}

/// One window with scalar loads (where no vector group fits): its output and whether it read a
/// NaN. `rows` are the offsets of its input rows in the plane, `first` its first column.
fn scalar_window<R: Reduce>(plane: &[f32], rows: impl Iterator<Item = usize>, first: usize, kw: usize, d: usize, scale: f32) -> (f32, bool) {
    let (mut acc, mut nan) = (R::INIT, false);
    for row in rows {
        for kx in 0..kw {
            let v = plane[row + first + kx * d];
            nan |= v.is_nan();
            acc = R::scalar(acc, v);
        }
    }
    (f32x4_extract_lane::<0>(R::finish(f32x4_splat(acc), f32x4_splat(scale))), nan)
}

/// Whether `pool_stride2` serves this plan: KH x KW windows of 2 or 3 taps each way, column
/// stride 2, no dilation across columns, and every window inside the plane (no padding).
fn stride2_windows(plan: &Plan) -> Option<(usize, usize)> {
    let (r, c) = (&plan.rows, &plan.cols);
    let inside = |a: &crate::params::pool::AxisPlan| a.pad_before == 0 && a.out > 0 && (a.out - 1) * a.stride + (a.kernel - 1) * a.dilation < a.len;
    let fits = (2..=3).contains(&r.kernel) && (2..=3).contains(&c.kernel) && c.stride == 2 && c.dilation == 1;
    (fits && inside(r) && inside(c)).then_some((r.kernel, c.kernel))
}

/// KH x KW windows at column stride 2 inside the plane (VGG's 2x2 pool, ResNet's 3x3 stride-2
/// stem pool): `pool_plane`'s pair path with every loop bound fixed at compile time, each row's
/// vector groups counted once, and two groups per step sharing one NaN test (for 3 taps, each
/// group's third vector carried over as the next group's first, one NaN test a row). Measured
/// (bench/wasm-ab.mjs, one sitting) against the generic path, whose closures and run-time loops
/// over taps cost more than the loads and maxima of a 2x2 window.
///
/// Every loaded vector goes into the NaN probe: which operand a max keeps when the other is NaN
/// is not fixed (the relaxed-SIMD build compiles `f32x4.pmax` to `f32x4.relaxed_max`, which on
/// x86 keeps the second operand where `pmax` keeps the first), so none may be left out.
#[inline(always)]
fn pool_stride2<R: Reduce, const KH: usize, const KW: usize>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) -> bool {
    let (r, c) = (&plan.rows, &plan.cols);
    let (w, ow) = (c.len, c.out);
    // Floats a group of 4 windows reads from its first column: two vectors, and for 3 taps one
    // float more (column 8, the last window's third tap: a 32-bit load into lane 0).
    let reach = if KW == 3 { 9 } else { 8 };
    let mut nan = f32x4_splat(0.0);
    let mut nan_scalar = false;
    for oy in 0..r.out {
        let rows: [usize; KH] = core::array::from_fn(|ky| (oy * r.stride + ky * r.dilation) * w);
        // Groups at ox < end read only inside the plane and write only inside the row.
        let room = plane.len().saturating_sub(rows[KH - 1] + reach);
        let end = if plane.len() >= rows[KH - 1] + reach { (room / 2 + 1).min(ow.saturating_sub(3)) } else { 0 };
        // The same for a group that loads a whole third vector (12 floats): the carrying loop.
        let carry_end = if plane.len() >= rows[KH - 1] + 12 { ((plane.len() - rows[KH - 1] - 12) / 2 + 1).min(end) } else { 0 };
        let out_row = &mut out[oy * ow..(oy + 1) * ow];
        let scale_row = if scale.is_empty() { scale } else { &scale[oy * ow..(oy + 1) * ow] };
        // The 4 outputs from ox, and the sum of the vectors read.
        let group = |ox: usize| -> (v128, v128) {
            // SAFETY (every load): ox < end, so the farthest read, rows[KH - 1] + 2·ox + reach - 1,
            // is inside the plane.
            let load = |at: usize| unsafe { v128_load(plane.as_ptr().add(at + 2 * ox) as *const v128) };
            let load_one = |at: usize| unsafe { v128_load32_zero(plane.as_ptr().add(at + 2 * ox) as *const u32) };
            let (mut a, mut b) = (load(rows[0]), load(rows[0] + 4));
            let mut third = if KW == 3 { load_one(rows[0] + 8) } else { a };
            let mut probe = if KW == 3 { f32x4_add(f32x4_add(a, b), third) } else { f32x4_add(a, b) };
            for &row in &rows[1..] {
                let (x, y) = (load(row), load(row + 4));
                a = R::lanes(a, x);
                b = R::lanes(b, y);
                let mut sum = f32x4_add(x, y);
                if KW == 3 {
                    let z = load_one(row + 8);
                    third = R::lanes(third, z);
                    sum = f32x4_add(sum, z);
                }
                probe = f32x4_add(probe, sum);
            }
            // Lanes 0, 2, 4, 6 of a, b are the 4 windows' first taps, lanes 1, 3, 5, 7 their second.
            let even = i32x4_shuffle::<0, 2, 4, 6>(a, b);
            let mut acc = R::lanes(even, i32x4_shuffle::<1, 3, 5, 7>(a, b));
            if KW == 3 {
                acc = R::lanes(acc, i32x4_shuffle::<1, 2, 3, 4>(even, third));
            }
            // SAFETY: ox + 4 <= ow.
            let sc = if scale_row.is_empty() { f32x4_splat(1.0) } else { unsafe { v128_load(scale_row.as_ptr().add(ox) as *const v128) } };
            (R::finish(acc, sc), probe)
        };
        let mut ox = 0;
        if KW == 3 && carry_end > 0 {
            // 3 taps: a group's third vector (columns 2·ox + 8..) is the next group's first, so
            // its rows are combined once and carried: 2 vectors a row per group instead of 3.
            // One probe for the whole row (a sum overflowing to inf - inf costs a needless rerun).
            // SAFETY (every load): the group starting at 2·ox reads below rows[KH - 1] + 2·ox +
            // 12, inside the plane for ox < carry_end.
            let column = |at: usize, probe: &mut v128| {
                let mut v = unsafe { v128_load(plane.as_ptr().add(rows[0] + at) as *const v128) };
                *probe = f32x4_add(*probe, v);
                for &row in &rows[1..] {
                    let x = unsafe { v128_load(plane.as_ptr().add(row + at) as *const v128) };
                    *probe = f32x4_add(*probe, x);
                    v = R::lanes(v, x);
                }
                v
            };
            let mut probe = f32x4_splat(0.0);
            let mut a = column(0, &mut probe);
            while ox < carry_end {
                let b = column(2 * ox + 4, &mut probe);
                let c = column(2 * ox + 8, &mut probe);
                let even = i32x4_shuffle::<0, 2, 4, 6>(a, b);
                let acc = R::lanes(R::lanes(even, i32x4_shuffle::<1, 3, 5, 7>(a, b)), i32x4_shuffle::<1, 2, 3, 4>(even, c));
                // SAFETY: ox + 4 <= ow (ox < end <= ow - 3).
                let sc = if scale_row.is_empty() { f32x4_splat(1.0) } else { unsafe { v128_load(scale_row.as_ptr().add(ox) as *const v128) } };
                unsafe { v128_store(out_row.as_mut_ptr().add(ox) as *mut v128, R::finish(acc, sc)) };
                a = c;
                ox += 4;
            }
            if R::PROBES_NAN {
                nan = v128_or(nan, f32x4_ne(probe, probe));
            }
        }
        while ox + 4 < end {
            let ((v0, p0), (v1, p1)) = (group(ox), group(ox + 4));
            // SAFETY: ox + 8 <= ow (ox + 4 < end <= ow - 3).
            unsafe {
                v128_store(out_row.as_mut_ptr().add(ox) as *mut v128, v0);
                v128_store(out_row.as_mut_ptr().add(ox + 4) as *mut v128, v1);
            }
            if R::PROBES_NAN {
                let probe = f32x4_add(p0, p1);
                nan = v128_or(nan, f32x4_ne(probe, probe));
            }
            ox += 8;
        }
        if ox < end {
            let (v, probe) = group(ox);
            // SAFETY: ox + 4 <= ow (ox < end <= ow - 3).
            unsafe { v128_store(out_row.as_mut_ptr().add(ox) as *mut v128, v) };
            if R::PROBES_NAN {
                nan = v128_or(nan, f32x4_ne(probe, probe));
            }
            ox += 4;
        }
        // A partial last group: the 4 windows ending at the row's end (recomputing a few).
        if ox < ow && ow >= 4 && ow - 4 < end {
            let (v, probe) = group(ow - 4);
            unsafe { v128_store(out_row.as_mut_ptr().add(ow - 4) as *mut v128, v) };
            if R::PROBES_NAN {
                nan = v128_or(nan, f32x4_ne(probe, probe));
            }
            ox = ow;
        }
        for (o, dst) in out_row.iter_mut().enumerate().skip(ox) {
            let sc = if scale_row.is_empty() { 1.0 } else { scale_row[o] };
            let (v, has_nan) = scalar_window::<R>(plane, rows.iter().copied(), 2 * o, KW, 1, sc);
            *dst = v;
            nan_scalar |= has_nan;
        }
    }
    R::PROBES_NAN && (v128_any_true(nan) || nan_scalar)
}

/// Runs `pool_plane::<R, S>` with S the column stride as a constant when it is 1 or 2, else 0.
fn by_stride<R: Reduce>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) -> bool {
    match stride2_windows(plan) {
        Some((2, 2)) => return pool_stride2::<R, 2, 2>(plan, plane, scale, out),
        Some((2, 3)) => return pool_stride2::<R, 2, 3>(plan, plane, scale, out),
        Some((3, 2)) => return pool_stride2::<R, 3, 2>(plan, plane, scale, out),
        Some(_) => return pool_stride2::<R, 3, 3>(plan, plane, scale, out),
        None => {}
    }
    match plan.cols.stride {
        1 => pool_plane::<R, 1>(plan, plane, scale, out),
        2 => pool_plane::<R, 2>(plan, plane, scale, out),
        _ => pool_plane::<R, 0>(plan, plane, scale, out),
    }
}

/// The maxima of every window of one plane (no indices).
pub(crate) fn max_plane(plan: &Plan, plane: &[f32], out: &mut [f32]) {
    // Optimistic: NaN-free planes (nearly all) are done in one pass; the others are redone.
    if by_stride::<MaxOfNumbers>(plan, plane, &[], out) {
        by_stride::<Max>(plan, plane, &[], out);
    }
}

/// The window averages of one plane; `scale` holds 1 / divisor per output.
pub(crate) fn avg_plane(plan: &Plan, scale: &[f32], plane: &[f32], out: &mut [f32]) {
    by_stride::<Sum>(plan, plane, scale, out);
}
