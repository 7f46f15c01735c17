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
//! Max pooling uses `f32x4.pmax` (one `maxps`) where no window reads a NaN, and `f32x4.max`,
//! which returns NaN if either operand is NaN (NaN wins, as on the key path), where one does.
//! The stride-2 kernels (2x2, 3x3 stride 2) pool with `pmax` while adding every value they read
//! into a sum (`Probe`), and pool the plane again with `f32x4.max` if the sum is NaN; the others
//! first make one pass over the plane (`holds_nan`). It adds +0 at the end so that a window of
//! -0s gives +0, as the key path's ordering of -0 with +0 does. Only the values: the argmax
//! indices (training) stay on keys.

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
    (fits && c.out >= 4 && inside(r) && inside(c)).then_some((r.kernel, c.kernel))
}

/// KH x KW windows at column stride 2 inside the plane (VGG's 2x2 pool, ResNet's 3x3 stride-2
/// stem pool, SqueezeNet's): groups of 4 windows, every loop bound fixed at compile time, every
/// read inside its own row, so a row is `ow / 4` groups and, when ow is not a multiple of 4, one
/// more group ending at the row's end (recomputing a few windows). Measured (bench/wasm-ab.mjs,
/// one sitting) against the generic path, whose closures and run-time loops over taps cost more
/// than the loads and maxima of a 2x2 window; the per-row work is kept to a few pointer additions
/// (V8 spilled the previous version's per-row bounds to the stack: 15-20% of the 2x2 pool's time).
///
/// With PROBE, it also sums every value the windows read (`Probe`) and returns whether the sum is
/// NaN; without, it returns false. Needs ow >= 4.
#[inline(always)]
fn pool_stride2<R: Reduce, const KH: usize, const KW: usize, const PROBE: bool>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) -> bool {
    let (r, c) = (&plan.rows, &plan.cols);
    let (w, ow) = (c.len, c.out);
    assert!(ow >= 4 && plane.len() == plan.in_plane() && out.len() == plan.out_plane() && (scale.is_empty() || scale.len() == out.len()), "pooling plane sizes");
    // A group from column 2·ox reads columns 2·ox ..= 2·ox + 7 (+ 8 for 3 taps), inside the row
    // for every ox <= ow - 4 since the last window is (2·(ow - 1) + KW <= w). Carrying the third
    // vector to the next group reads columns up to 2·ox + 11: `carried` groups allow it.
    let carried = if KW == 3 && w >= 12 { ((w - 12) / 8 + 1).min(ow / 4) } else { 0 };
    let row_step = r.dilation * w;
    // Whether an output row's first input row is the previous output row's last or middle one
    // (3x3 stride 2: row 2·oy is the third row of output row oy - 1), so was probed with it.
    let top_probed = r.stride % r.dilation == 0 && r.stride <= (KH - 1) * r.dilation;
    // 3-row windows whose rows step 2 (3x3 stride 2): output rows oy and oy + 1 share input row
    // 2·oy + 2, so pairs of them are pooled in one pass over 5 input rows.
    let paired = KH == 3 && r.stride == 2 * r.dilation;
    let mut probe = Probe::new();
    let mut oy = 0;
    while oy < r.out {
        let top = oy * r.stride * w;
        let pair = paired && oy + 1 < r.out;
        // SAFETY: rows top + k·row_step (k < KH, and k < 5 for a pair, whose second output
        // row's rows are top + (2 + k)·row_step) are rows of the plane (the plan has no padding
        // and its last window lies inside), and every group reads inside them (above); outputs
        // oy·ow + ox.. + 4 with ox <= ow - 4 lie inside `out` (and `scale`), and so do those of
        // row oy + 1 < oh for a pair.
        unsafe {
            let src = plane.as_ptr().add(top);
            let dst = out.as_mut_ptr().add(oy * ow);
            let sc = if scale.is_empty() { core::ptr::null() } else { scale.as_ptr().add(oy * ow) };
            // The input rows this output row probes: from the first (0), the second (1) or none (KH).
            match (PROBE, oy > 0 && top_probed, pair) {
                (false, _, false) => row_groups::<R, KH, KW, KH>(src, row_step, dst, sc, ow / 4, carried, &mut probe),
                (true, false, false) => row_groups::<R, KH, KW, 0>(src, row_step, dst, sc, ow / 4, carried, &mut probe),
                (true, true, false) => row_groups::<R, KH, KW, 1>(src, row_step, dst, sc, ow / 4, carried, &mut probe),
                (false, _, true) => row_pair_groups::<R, KW, KH>(src, row_step, dst, ow, sc, ow / 4, carried, &mut probe),
                (true, false, true) => row_pair_groups::<R, KW, 0>(src, row_step, dst, ow, sc, ow / 4, carried, &mut probe),
                (true, true, true) => row_pair_groups::<R, KW, 1>(src, row_step, dst, ow, sc, ow / 4, carried, &mut probe),
            }
            if ow % 4 != 0 {
                tail_group::<R, KH, KW, PROBE>(src, row_step, dst, sc, ow - 4, &mut probe);
                if pair {
                    tail_group::<R, KH, KW, PROBE>(src.add(2 * row_step), row_step, dst.add(ow), sc.wrapping_add(ow), ow - 4, &mut probe);
                }
            }
        }
        oy += if pair { 2 } else { 1 };
    }
    PROBE && probe.saw_nan()
}

/// The last 4 windows of an output row, from column 2·ox of its first input row `src`: every
/// input row probed with PROBE.
///
/// SAFETY: as `group` for src + 2·ox; dst[ox..ox + 4] writable (sc likewise, or null).
#[inline(always)]
unsafe fn tail_group<R: Reduce, const KH: usize, const KW: usize, const PROBE: bool>(src: *const f32, row_step: usize, dst: *mut f32, sc: *const f32, ox: usize, probe: &mut Probe) {
    let p = src.add(2 * ox);
    let acc = if PROBE { group::<R, KH, KW, 0>(p, row_step, probe) } else { group::<R, KH, KW, KH>(p, row_step, probe) };
    store::<R>(acc, dst.add(ox), sc.wrapping_add(ox));
}

/// A running sum of the values the windows read: NaN if one of them is (or if +inf meets -inf,
/// which only sends a NaN-free plane to the slower exact max). The NaN test of `max_plane`.
struct Probe(v128);
impl Probe {
    fn new() -> Self {
        Probe(f32x4_splat(0.0))
    }
    #[inline(always)]
    fn add(&mut self, v: v128) {
        self.0 = f32x4_add(self.0, v);
    }
    fn saw_nan(&self) -> bool {
        v128_any_true(f32x4_ne(self.0, self.0))
    }
}

/// The KH rows of 4 columns from `p` (rows `row_step` apart) combined, and the sum of rows
/// FRESH.. of them (FRESH = KH: no sum, -0 which adds as nothing).
///
/// SAFETY: p[k·row_step..][..4] readable for k < KH.
#[inline(always)]
unsafe fn column<R: Reduce, const KH: usize, const FRESH: usize>(p: *const f32, row_step: usize) -> (v128, v128) {
    let mut v = v128_load(p as *const v128);
    let mut sum = if FRESH == 0 { v } else { f32x4_splat(-0.0) };
    for k in 1..KH {
        let row = v128_load(p.add(k * row_step) as *const v128);
        v = R::lanes(v, row);
        if k == FRESH {
            sum = row;
        } else if k > FRESH {
            sum = f32x4_add(sum, row);
        }
    }
    (v, sum)
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
/// 32-bit load) of each row; rows FRESH.. of them go into `probe` (none for FRESH = KH).
///
/// SAFETY: p[k·row_step..][..8 + (KW == 3)] readable for k < KH.
#[inline(always)]
unsafe fn group<R: Reduce, const KH: usize, const KW: usize, const FRESH: usize>(p: *const f32, row_step: usize, probe: &mut Probe) -> v128 {
    let ((a, sa), (b, sb)) = (column::<R, KH, FRESH>(p, row_step), column::<R, KH, FRESH>(p.add(4), row_step));
    let (mut c, mut sc) = (a, f32x4_splat(-0.0));
    if KW == 3 {
        c = v128_load32_zero(p.add(8) as *const u32);
        if FRESH == 0 {
            sc = c;
        }
        for k in 1..KH {
            let row = v128_load32_zero(p.add(8 + k * row_step) as *const u32);
            c = R::lanes(c, row);
            if k >= FRESH {
                sc = f32x4_add(sc, row);
            }
        }
    }
    if FRESH < KH {
        probe.add(f32x4_add(f32x4_add(sa, sb), sc));
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
/// Input rows FRESH.. of every value read go into `probe` (none for FRESH = KH).
///
/// SAFETY: as `group` for every group, and p[k·row_step..][..12] readable for the carried ones.
#[inline(always)]
unsafe fn row_groups<R: Reduce, const KH: usize, const KW: usize, const FRESH: usize>(
    src: *const f32,
    row_step: usize,
    dst: *mut f32,
    sc: *const f32,
    groups: usize,
    carried: usize,
    probe: &mut Probe,
) {
    let mut g = 0;
    if KW == 3 && carried > 0 {
        let (mut a, sa) = column::<R, KH, FRESH>(src, row_step);
        let mut sum = sa;
        while g < carried {
            let p = src.add(8 * g);
            let ((b, sb), (c, sc8)) = (column::<R, KH, FRESH>(p.add(4), row_step), column::<R, KH, FRESH>(p.add(8), row_step));
            if FRESH < KH {
                sum = f32x4_add(sum, f32x4_add(sb, sc8));
            }
            store::<R>(windows::<R, KW>(a, b, c), dst.add(4 * g), sc.wrapping_add(4 * g));
            a = c;
            g += 1;
        }
        if FRESH < KH {
            probe.add(sum);
        }
    }
    while g < groups {
        store::<R>(group::<R, KH, KW, FRESH>(src.add(8 * g), row_step, probe), dst.add(4 * g), sc.wrapping_add(4 * g));
        g += 1;
    }
}

/// Two output rows of 3-row windows, the second starting at the first's third input row
/// (`src` + 2·row_step): `row_groups` over 5 input rows, each loaded once. Input rows FRESH..
/// go into `probe` (none for FRESH = 3).
///
/// SAFETY: as `row_groups` for both output rows (`dst` and `dst + ow`, scales likewise).
#[inline(always)]
unsafe fn row_pair_groups<R: Reduce, const KW: usize, const FRESH: usize>(
    src: *const f32,
    row_step: usize,
    dst: *mut f32,
    ow: usize,
    sc: *const f32,
    groups: usize,
    carried: usize,
    probe: &mut Probe,
) {
    let mut g = 0;
    if KW == 3 && carried > 0 {
        let mut rows = [0, 1, 2, 3, 4].map(|k| src.add(k * row_step));
        let (mut a, mut a2, mut sum) = column_pair::<R, FRESH>(rows, 0);
        // Row pointers from column 4, stepped by a group: b is read at the pointers themselves,
        // one address addition fewer per row in V8's code.
        rows = rows.map(|r| r.add(4));
        let (mut out0, mut out1) = (dst, dst.add(ow));
        while g < carried {
            let ((b, b2, sb), (c, c2, sc8)) = (column_pair::<R, FRESH>(rows, 0), column_pair::<R, FRESH>(rows, 4));
            if FRESH < 3 {
                sum = f32x4_add(sum, f32x4_add(sb, sc8));
            }
            store::<R>(windows::<R, KW>(a, b, c), out0, sc.wrapping_add(4 * g));
            store::<R>(windows::<R, KW>(a2, b2, c2), out1, sc.wrapping_add(ow + 4 * g));
            (a, a2) = (c, c2);
            rows = rows.map(|r| r.add(8));
            (out0, out1) = (out0.add(4), out1.add(4));
            g += 1;
        }
        if FRESH < 3 {
            probe.add(sum);
        }
    }
    while g < groups {
        let p = src.add(8 * g);
        store::<R>(group::<R, 3, KW, FRESH>(p, row_step, probe), dst.add(4 * g), sc.wrapping_add(4 * g));
        let p2 = p.add(2 * row_step);
        let acc = if FRESH < 3 { group::<R, 3, KW, 1>(p2, row_step, probe) } else { group::<R, 3, KW, 3>(p2, row_step, probe) };
        store::<R>(acc, dst.add(ow + 4 * g), sc.wrapping_add(ow + 4 * g));
        g += 1;
    }
}

/// 4 columns from column `at` of 5 input rows: rows 0..3 combined, rows 2..5 combined, and the
/// sum of rows FRESH.. (FRESH = 3: no sum).
///
/// SAFETY: rows[k][at..at + 4] readable for k < 5.
#[inline(always)]
unsafe fn column_pair<R: Reduce, const FRESH: usize>(rows: [*const f32; 5], at: usize) -> (v128, v128, v128) {
    let [r0, r1, r2, r3, r4] = rows.map(|r| v128_load(r.add(at) as *const v128));
    let sum = match FRESH {
        0 => f32x4_add(f32x4_add(f32x4_add(r0, r1), r2), f32x4_add(r3, r4)),
        1 => f32x4_add(f32x4_add(r1, r2), f32x4_add(r3, r4)),
        _ => f32x4_splat(-0.0),
    };
    (R::lanes(R::lanes(r0, r1), r2), R::lanes(R::lanes(r2, r3), r4), sum)
}

/// Runs `pool_stride2` when it serves the plan (`Some` of its NaN probe's answer), else `None`.
fn stride2<R: Reduce, const PROBE: bool>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) -> Option<bool> {
    Some(match stride2_windows(plan)? {
        (2, 2) => pool_stride2::<R, 2, 2, PROBE>(plan, plane, scale, out),
        (2, 3) => pool_stride2::<R, 2, 3, PROBE>(plan, plane, scale, out),
        (3, 2) => pool_stride2::<R, 3, 2, PROBE>(plan, plane, scale, out),
        _ => pool_stride2::<R, 3, 3, PROBE>(plan, plane, scale, out),
    })
}

/// Runs `stride2`, or `pool_plane::<R, S>` with S the column stride as a constant when it is 1
/// or 2, else 0.
fn by_stride<R: Reduce>(plan: &Plan, plane: &[f32], scale: &[f32], out: &mut [f32]) {
    if stride2::<R, false>(plan, plane, scale, out).is_some() {
        return;
    }
    match plan.cols.stride {
        1 => pool_plane::<R, 1>(plan, plane, scale, out),
        2 => pool_plane::<R, 2>(plan, plane, scale, out),
        _ => pool_plane::<R, 0>(plan, plane, scale, out),
    }
}

/// The maxima of every window of one plane (no indices): with `pmax` where no window reads a NaN
/// (`MaxOfNumbers`), else again with the exact max. The stride-2 kernels probe for NaN as they
/// pool (every value they read is added to a sum once); the others after one pass (`holds_nan`).
pub(crate) fn max_plane(plan: &Plan, plane: &[f32], out: &mut [f32]) {
    match stride2::<MaxOfNumbers, true>(plan, plane, &[], out) {
        Some(false) => {}
        Some(true) => by_stride::<Max>(plan, plane, &[], out),
        None if holds_nan(plane) => by_stride::<Max>(plan, plane, &[], out),
        None => by_stride::<MaxOfNumbers>(plan, plane, &[], out),
    }
}

/// Whether the plane may hold a NaN: the sum of its values is NaN (+inf meeting -inf also makes
/// one, which only sends a NaN-free plane to the slower exact max). Every value counts: which
/// operand `pmax` keeps when the other is NaN is not fixed (the relaxed-SIMD build compiles it to
/// `f32x4.relaxed_max`, which on x86 keeps the second operand where `pmax` keeps the first), and
/// a chain of maxima carries only its first operand's NaN through in any case.
///
/// One pass with 4 independent sums, before the pooling, for the kernels that do not probe as
/// they pool. History (bench/wasm-ab.mjs pool, the relaxed build): a probe that summed every
/// vector the windows loaded and tested the sum per group of windows measured 3x3 stride-2 max
/// 0.81-0.85x tfjs-wasm, this pass 0.91-0.95x, no NaN test at all 1.37-1.39x. The stride-2
/// kernels now add each value they read once, in registers, test the sum once per plane, and
/// pool two 3x3 output rows per pass over their 5 input rows: 1.09-1.13x (bench/README.md).
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
