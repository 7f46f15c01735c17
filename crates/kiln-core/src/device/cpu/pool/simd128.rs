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
//! Max pooling uses `f32x4.pmax` (one `maxps`) on a plane that holds no NaN, and `f32x4.max`,
//! which returns NaN if either operand is NaN (NaN wins, as on the key path), on one that does:
//! one pass over the plane first tells which (`holds_nan`). It adds +0 at the end so that a
//! window of -0s gives +0, as the key path's ordering of -0 with +0 does. Only the values: the
//! argmax indices (training) stay on keys.

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

/// Max of NaN-free values: `f32x4.pmax` (`a < b ? b : a`, one `maxps`), which would drop a NaN
/// (a plane with one goes to `Max`). Measured 2x faster than `f32x4.max` in the 2x2 pool.
struct MaxOfNumbers;
impl Reduce for MaxOfNumbers {
    const INIT: f32 = f32::NEG_INFINITY;
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

/// Every output of one plane.
#[inline(always)]
fn pool_plane<R: Reduce, const S: usize>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) {
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
        // The 4 outputs from ox.
        let group = |ox: usize| -> v128 {
            let mut acc = f32x4_splat(R::INIT);
            // SAFETY (every load): `fits(ox)` holds, so the highest read is inside the plane.
            let load = |at: usize| unsafe { v128_load(plane.as_ptr().add(at) as *const v128) };
            if pairs && taps_y > 0 {
                // Stride 2, taps at column offsets 0..=2: combine the rows' loads first, then
                // take the taps' lanes out of the combined vectors with shuffles.
                let p = row_at(0) + 2 * ox;
                let (mut a, mut b) = (load(p), load(p + 4));
                let mut c8 = if reach > 7 { load(p + 8) } else { acc };
                for ky in 1..taps_y {
                    let p = row_at(ky) + 2 * ox;
                    a = R::lanes(a, load(p));
                    b = R::lanes(b, load(p + 4));
                    if reach > 7 {
                        c8 = R::lanes(c8, load(p + 8));
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
                        acc = R::lanes(acc, v);
                    }
                }
            }
            let sc = if scale_row.is_empty() { f32x4_splat(1.0) } else { unsafe { v128_load(scale_row.as_ptr().add(ox) as *const v128) } };
            R::finish(acc, sc)
        };
        let mut ox = 0;
        while fits(ox) {
            // SAFETY: ox + 4 <= out_row.len().
            unsafe { v128_store(out_row.as_mut_ptr().add(ox) as *mut v128, group(ox)) };
            ox += 4;
        }
        // A partial last group: the 4 windows ending at the row's end (recomputing a few).
        if ox < c.out && c.out >= 4 && fits(c.out - 4) {
            unsafe { v128_store(out_row.as_mut_ptr().add(c.out - 4) as *mut v128, group(c.out - 4)) };
            ox = c.out;
        }
        for (o, dst) in out_row.iter_mut().enumerate().skip(ox) {
            let sc = if scale_row.is_empty() { 1.0 } else { scale_row[o] };
            *dst = scalar_window::<R>(plane, (0..taps_y).map(row_at), o * s, kw, d, sc);
        }
    }
}

/// One window with scalar loads (where no vector group fits). `rows` are the offsets of its
/// input rows in the plane, `first` its first column.
fn scalar_window<R: Reduce>(plane: &[f32], rows: impl Iterator<Item = usize>, first: usize, kw: usize, d: usize, scale: f32) -> f32 {
    let mut acc = R::INIT;
    for row in rows {
        for kx in 0..kw {
            acc = R::scalar(acc, plane[row + first + kx * d]);
        }
    }
    f32x4_extract_lane::<0>(R::finish(f32x4_splat(acc), f32x4_splat(scale)))
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
/// stem pool, SqueezeNet's): groups of 4 windows, every loop bound fixed at compile time, every
/// read inside its own row, so a row is `ow / 4` groups and, when ow is not a multiple of 4, one
/// more group ending at the row's end (recomputing a few windows). Measured (bench/wasm-ab.mjs,
/// one sitting) against the generic path, whose closures and run-time loops over taps cost more
/// than the loads and maxima of a 2x2 window; the per-row work is kept to a few pointer additions
/// (V8 spilled the previous version's per-row bounds to the stack: 15-20% of the 2x2 pool's time).
#[inline(always)]
fn pool_stride2<R: Reduce, const KH: usize, const KW: usize>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) {
    let (r, c) = (&plan.rows, &plan.cols);
    let (w, ow) = (c.len, c.out);
    assert!(plane.len() == plan.in_plane() && out.len() == plan.out_plane() && (scale.is_empty() || scale.len() == out.len()), "pooling plane sizes");
    // A group from column 2·ox reads columns 2·ox ..= 2·ox + 7 (+ 8 for 3 taps), inside the row
    // for every ox <= ow - 4 since the last window is (2·(ow - 1) + KW <= w). Carrying the third
    // vector to the next group reads columns up to 2·ox + 11: `carried` groups allow it.
    let carried = if KW == 3 && w >= 12 { ((w - 12) / 8 + 1).min(ow / 4) } else { 0 };
    let row_step = r.dilation * w;
    for oy in 0..r.out {
        let top = oy * r.stride * w;
        if ow >= 4 {
            // SAFETY: rows top + k·row_step (k < KH) are rows of the plane (the plan has no
            // padding and its last window lies inside), and every group reads inside them (above);
            // outputs oy·ow + ox.. + 4 with ox <= ow - 4 lie inside `out` (and `scale`).
            unsafe {
                let src = plane.as_ptr().add(top);
                let dst = out.as_mut_ptr().add(oy * ow);
                let sc = if scale.is_empty() { core::ptr::null() } else { scale.as_ptr().add(oy * ow) };
                row_groups::<R, KH, KW>(src, row_step, dst, sc, ow / 4, carried);
                if ow % 4 != 0 {
                    let ox = ow - 4;
                    let acc = group::<R, KH, KW>(src.add(2 * ox), row_step);
                    store::<R>(acc, dst.add(ox), sc.wrapping_add(ox));
                }
            }
        } else {
            for (o, dst) in out[oy * ow..(oy + 1) * ow].iter_mut().enumerate() {
                let sc = if scale.is_empty() { 1.0 } else { scale[oy * ow + o] };
                *dst = scalar_window::<R>(plane, (0..KH).map(|k| top + k * row_step), 2 * o, KW, 1, sc);
            }
        }
    }
}

/// The KH rows of 4 columns from `p` (rows `row_step` apart) combined.
///
/// SAFETY: p[k·row_step..][..4] readable for k < KH.
#[inline(always)]
unsafe fn column<R: Reduce, const KH: usize>(p: *const f32, row_step: usize) -> v128 {
    let mut v = v128_load(p as *const v128);
    for k in 1..KH {
        v = R::lanes(v, v128_load(p.add(k * row_step) as *const v128));
    }
    v
}

/// The 4 windows from columns `a` (0..4), `b` (4..8) and, for 3 taps, lane 0 of `c` (column 8):
/// lanes 0, 2, 4, 6 of a, b are the windows' first taps, 1, 3, 5, 7 their second, 2, 4, 6, 8
/// their third.
#[inline(always)]
fn windows<R: Reduce, const KW: usize>(a: v128, b: v128, c: v128) -> v128 {
    let even = i32x4_shuffle::<0, 2, 4, 6>(a, b);
    let acc = R::lanes(even, i32x4_shuffle::<1, 3, 5, 7>(a, b));
    if KW == 3 { R::lanes(acc, i32x4_shuffle::<1, 2, 3, 4>(even, c)) } else { acc }
}

/// The 4 windows of one group from column `p`, reading columns 0..8 (and 8 for 3 taps, as a
/// 32-bit load) of each row.
///
/// SAFETY: p[k·row_step..][..8 + (KW == 3)] readable for k < KH.
#[inline(always)]
unsafe fn group<R: Reduce, const KH: usize, const KW: usize>(p: *const f32, row_step: usize) -> v128 {
    let (a, b) = (column::<R, KH>(p, row_step), column::<R, KH>(p.add(4), row_step));
    let mut c = a;
    if KW == 3 {
        c = v128_load32_zero(p.add(8) as *const u32);
        for k in 1..KH {
            c = R::lanes(c, v128_load32_zero(p.add(8 + k * row_step) as *const u32));
        }
    }
    windows::<R, KW>(a, b, c)
}

/// Stores 4 outputs, through `R::finish` with 4 scales from `sc` (all 1 when null).
///
/// SAFETY: dst[..4] writable; sc null or sc[..4] readable.
#[inline(always)]
unsafe fn store<R: Reduce>(acc: v128, dst: *mut f32, sc: *const f32) {
    let scale = if sc.is_null() { f32x4_splat(1.0) } else { v128_load(sc as *const v128) };
    v128_store(dst as *mut v128, R::finish(acc, scale));
}

/// `groups` groups of 4 windows of one output row from `src` (its first input row) into `dst`;
/// the first `carried` of them (3 taps) pass their third vector on as the next group's first.
///
/// SAFETY: as `group` for every group, and p[k·row_step..][..12] readable for the carried ones.
#[inline(always)]
unsafe fn row_groups<R: Reduce, const KH: usize, const KW: usize>(src: *const f32, row_step: usize, dst: *mut f32, sc: *const f32, groups: usize, carried: usize) {
    let mut g = 0;
    if KW == 3 && carried > 0 {
        let mut a = column::<R, KH>(src, row_step);
        while g < carried {
            let p = src.add(8 * g);
            let (b, c) = (column::<R, KH>(p.add(4), row_step), column::<R, KH>(p.add(8), row_step));
            store::<R>(windows::<R, KW>(a, b, c), dst.add(4 * g), sc.wrapping_add(4 * g));
            a = c;
            g += 1;
        }
    }
    while g < groups {
        store::<R>(group::<R, KH, KW>(src.add(8 * g), row_step), dst.add(4 * g), sc.wrapping_add(4 * g));
        g += 1;
    }
}

/// Runs `pool_plane::<R, S>` with S the column stride as a constant when it is 1 or 2, else 0.
fn by_stride<R: Reduce>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) {
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
    if holds_nan(plane) {
        by_stride::<Max>(plan, plane, &[], out);
    } else {
        by_stride::<MaxOfNumbers>(plan, plane, &[], out);
    }
}

/// Whether the plane may hold a NaN: the sum of its values is NaN (+inf meeting -inf also makes
/// one, which only sends a NaN-free plane to the slower exact max). Every value counts: which
/// operand `pmax` keeps when the other is NaN is not fixed (the relaxed-SIMD build compiles it to
/// `f32x4.relaxed_max`, which on x86 keeps the second operand where `pmax` keeps the first).
///
/// One pass with 4 independent sums, before the pooling. The previous probe summed every vector
/// the windows loaded and tested the sum per group of windows: measured (bench/wasm-ab.mjs pool,
/// the relaxed build, loaded machine, A/B alternating) 3x3 stride-2 max 0.81-0.85x tfjs-wasm
/// with it, 0.91-0.95x with this pass (and 1.37-1.39x with no NaN test at all: the test is still
/// a third of the time); 2x2 max 1.06-1.09x -> 1.25x. Probing only the rows no later output row
/// reads (each value once) measured no better (0.84x), nor did this pass after the pooling, on a
/// plane already in L1 (0.86-0.90x).
fn holds_nan(plane: &[f32]) -> bool {
    let mut sums = [f32x4_splat(0.0); 4];
    let mut blocks = plane.chunks_exact(16);
    for block in &mut blocks {
        for (i, sum) in sums.iter_mut().enumerate() {
            // SAFETY: block[4i..4i + 4] lies inside the 16-value block.
            *sum = f32x4_add(*sum, unsafe { v128_load(block.as_ptr().add(4 * i) as *const v128) });
        }
    }
    let total = f32x4_add(f32x4_add(sums[0], sums[1]), f32x4_add(sums[2], sums[3]));
    let rest: f32 = blocks.remainder().iter().sum();
    v128_any_true(f32x4_ne(total, total)) || rest.is_nan()
}

/// The window averages of one plane; `scale` holds 1 / divisor per output.
pub(crate) fn avg_plane(plan: &Plan, scale: &[f32], plane: &[f32], out: &mut [f32]) {
    by_stride::<Sum>(plan, plane, scale, out);
}
