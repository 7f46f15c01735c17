//! Pooling with column stride 2 (2x2 and 3x3 stride-2 windows: VGG's, ResNet's stem, SqueezeNet's)
//! on AVX-512, straight from the plane: 16 windows of an output row per vector.
//!
//! Why not kernels.rs's path: it copies every plane into a padded buffer (integer keys for max
//! pooling) and reads each tap of 16 windows with 16 strided scalar loads; measured slower than
//! tfjs-backend-wasm on one thread (bench pool rows). Here the 32 (33 for 3 taps) input columns of
//! 16 windows are 2 (3) vector loads per input row; the rows of the window are combined first, as
//! whole vectors, then one permute picks the even columns (each window's first tap), one the odd
//! (second tap), and for 3 taps one more shifts the even ones by a lane (third tap). Padding and
//! the row ends are lane masks on the loads (masked-off lanes read nothing and hold the fill), so
//! no copy is made.
//!
//! Max pooling propagates NaN (`nan_max`), adds +0 at the end (a window of -0s gives +0, as the
//! key path does), and when indices are wanted keeps each window's first maximum in row-major
//! tap order (PyTorch's tie rule): then the taps are compared one by one after the permutes.

use crate::params::pool::Plan;
use crate::simd::{self, SimdLevel};
use std::arch::x86_64::*;

/// Windows per vector.
const LANES: usize = 16;

/// Whether this kernel serves the plan: column stride 2, 2 or 3 taps per row of the window, no
/// column dilation, on a CPU with AVX-512 (any rows, any padding).
pub(crate) fn applies(plan: &Plan) -> bool {
    let c = &plan.cols;
    c.stride == 2 && c.dilation == 1 && matches!(c.kernel, 2 | 3) && simd::level() == SimdLevel::Avx512
}

/// Lanes l with 0 <= start + step·l < len (the lanes of a vector that read inside a row).
fn lanes_inside(start: isize, step: isize, len: usize) -> __mmask16 {
    let first = if start >= 0 { 0 } else { (-start + step - 1) / step };
    let end = if (len as isize) <= start { 0 } else { (len as isize - start + step - 1) / step };
    let (first, end) = (first.clamp(0, 16) as u32, end.clamp(0, 16) as u32);
    if end <= first {
        0
    } else {
        (((1u32 << end) - 1) & !((1u32 << first) - 1)) as __mmask16
    }
}

/// One strip of 16 output columns: the first input column it reads (negative in the left
/// padding), the masks of its 3 vector loads, of each tap's 16 windows (the taps that land in
/// the row) and of its outputs.
struct Strip {
    start: isize,
    loads: [__mmask16; 3],
    taps: [__mmask16; 3],
    store: __mmask16,
}

impl Strip {
    fn new(plan: &Plan, ox0: usize) -> Strip {
        let c = &plan.cols;
        let start = (2 * ox0) as isize - c.pad_before as isize;
        let third = if c.kernel == 3 { lanes_inside(start + 32, 1, c.len) & 1 } else { 0 };
        Strip {
            start,
            loads: [lanes_inside(start, 1, c.len), lanes_inside(start + 16, 1, c.len), third],
            taps: [0, 1, 2].map(|kx| if kx < c.kernel { lanes_inside(start + kx as isize, 2, c.len) } else { 0 }),
            store: lanes_inside(ox0 as isize, 1, c.out),
        }
    }
}

/// Lane indices of the permutes: even and odd columns of two vectors, even columns moved one
/// lane down with the third vector's first lane last.
#[target_feature(enable = "avx512f")]
fn permutes() -> (__m512i, __m512i, __m512i) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let shift = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    (even, odd, shift)
}

/// max(a, b), NaN if either is NaN (`vmaxps` alone returns b when either is NaN, so a NaN in a
/// would be lost).
#[inline(always)]
unsafe fn nan_max(a: __m512, b: __m512) -> __m512 {
    _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a), a)
}

/// How the rows of a window combine: max (padding -inf) or sum (padding 0).
trait Reduce {
    const FILL: f32;
    unsafe fn lanes(a: __m512, b: __m512) -> __m512;
}

struct Max;
impl Reduce for Max {
    const FILL: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    unsafe fn lanes(a: __m512, b: __m512) -> __m512 {
        nan_max(a, b)
    }
}

struct Sum;
impl Reduce for Sum {
    const FILL: f32 = 0.0;
    #[inline(always)]
    unsafe fn lanes(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
}

/// The reduction of every window of the strip, rows first, then the taps across columns.
///
/// SAFETY: AVX-512F; `plane` is one input plane of `plan`.
#[inline(always)]
unsafe fn reduce_strip<R: Reduce>(plan: &Plan, plane: &[f32], oy: usize, s: &Strip) -> __m512 {
    let (w, kw) = (plan.cols.len, plan.cols.kernel);
    let fill = _mm512_set1_ps(R::FILL);
    let mut acc = [fill; 3];
    for iy in plan.input_rows(oy) {
        // Masked-off lanes are not read, so the address may lie outside the row.
        let p = plane.as_ptr().wrapping_offset((iy * w) as isize + s.start);
        for (v, acc) in acc.iter_mut().enumerate().take(if kw == 3 { 3 } else { 2 }) {
            *acc = R::lanes(*acc, _mm512_mask_loadu_ps(fill, s.loads[v], p.wrapping_add(16 * v)));
        }
    }
    let (even, odd, shift) = permutes();
    let first = _mm512_permutex2var_ps(acc[0], even, acc[1]);
    let mut out = R::lanes(first, _mm512_permutex2var_ps(acc[0], odd, acc[1]));
    if kw == 3 {
        out = R::lanes(out, _mm512_permutex2var_ps(first, shift, acc[2]));
    }
    out
}

/// The maxima of every window of one plane (no indices).
///
/// SAFETY: AVX-512F; `applies(plan)`; `plane` and `out` are one plane of the input and output.
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_values(plan: &Plan, plane: &[f32], out: &mut [f32]) {
    let ow = plan.cols.out;
    assert!(plane.len() == plan.in_plane() && out.len() == plan.out_plane(), "pooling plane sizes");
    for ox0 in (0..ow).step_by(LANES) {
        let strip = Strip::new(plan, ox0);
        for oy in 0..plan.rows.out {
            let v = _mm512_add_ps(reduce_strip::<Max>(plan, plane, oy, &strip), _mm512_setzero_ps());
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(oy * ow + ox0), strip.store, v);
        }
    }
}

/// The window averages of one plane; `scale` holds 1 / divisor per output.
///
/// SAFETY: as `max_plane_values`, and `scale` has one value per output of the plane.
#[target_feature(enable = "avx512f")]
unsafe fn avg_plane_values(plan: &Plan, scale: &[f32], plane: &[f32], out: &mut [f32]) {
    let ow = plan.cols.out;
    assert!(plane.len() == plan.in_plane() && out.len() == plan.out_plane() && scale.len() == out.len(), "pooling plane sizes");
    for ox0 in (0..ow).step_by(LANES) {
        let strip = Strip::new(plan, ox0);
        for oy in 0..plan.rows.out {
            let at = oy * ow + ox0;
            let sc = _mm512_maskz_loadu_ps(strip.store, scale.as_ptr().add(at));
            let v = _mm512_mul_ps(reduce_strip::<Sum>(plan, plane, oy, &strip), sc);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), strip.store, v);
        }
    }
}

/// The maxima of every window of one plane and each window's first argmax (index into the plane).
///
/// SAFETY: as `max_plane_values`, and `idx` is as long as `out`.
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_indexed(plan: &Plan, plane: &[f32], out: &mut [f32], idx: &mut [i32]) {
    let (w, ow, kw) = (plan.cols.len, plan.cols.out, plan.cols.kernel);
    assert!(plane.len() == plan.in_plane() && out.len() == plan.out_plane() && idx.len() == out.len(), "pooling plane sizes");
    let (even, odd, shift) = permutes();
    let fill = _mm512_set1_ps(f32::NEG_INFINITY);
    let step2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for ox0 in (0..ow).step_by(LANES) {
        let s = Strip::new(plan, ox0);
        for oy in 0..plan.rows.out {
            let mut best = fill;
            let mut at = _mm512_setzero_si512();
            // Windows that hold a value yet: until then, any tap inside the input wins (so a
            // window of -inf still gets the index of its first tap).
            let mut have: __mmask16 = 0;
            for iy in plan.input_rows(oy) {
                let p = plane.as_ptr().wrapping_offset((iy * w) as isize + s.start);
                let a = _mm512_mask_loadu_ps(fill, s.loads[0], p);
                let b = _mm512_mask_loadu_ps(fill, s.loads[1], p.wrapping_add(16));
                let first = _mm512_permutex2var_ps(a, even, b);
                let second = _mm512_permutex2var_ps(a, odd, b);
                let third = if kw == 3 { _mm512_permutex2var_ps(first, shift, _mm512_mask_loadu_ps(fill, s.loads[2], p.wrapping_add(32))) } else { first };
                // Row-major tap order: the tie rule depends on it.
                for (kx, v) in [first, second, third].into_iter().enumerate().take(kw) {
                    // Larger, or a NaN over a number; never over a NaN (the first NaN stays).
                    let better = _mm512_mask_cmp_ps_mask::<_CMP_NLE_UQ>(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(best, best), v, best);
                    let take = s.taps[kx] & (better | !have);
                    best = _mm512_mask_mov_ps(best, take, v);
                    let base = (iy * w) as isize + s.start + kx as isize;
                    at = _mm512_mask_add_epi32(at, take, _mm512_set1_epi32(base as i32), step2);
                    have |= s.taps[kx];
                }
            }
            let o = oy * ow + ox0;
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(o), s.store, _mm512_add_ps(best, _mm512_setzero_ps()));
            _mm512_mask_storeu_epi32(idx.as_mut_ptr().add(o), s.store, at);
        }
    }
}

/// Max pooling of one plane: `out` gets the maxima, `idx` (empty when untracked) the first argmaxes.
pub(crate) fn max_plane(plan: &Plan, plane: &[f32], out: &mut [f32], idx: &mut [i32]) {
    debug_assert!(applies(plan));
    // SAFETY: `applies` checked AVX-512 and the column geometry; the kernels check the lengths.
    unsafe {
        if idx.is_empty() {
            max_plane_values(plan, plane, out)
        } else {
            max_plane_indexed(plan, plane, out, idx)
        }
    }
}

/// Average pooling of one plane; `scale` holds 1 / divisor per output.
pub(crate) fn avg_plane(plan: &Plan, scale: &[f32], plane: &[f32], out: &mut [f32]) {
    debug_assert!(applies(plan));
    // SAFETY: as in `max_plane`.
    unsafe { avg_plane_values(plan, scale, plane, out) }
}

// ---- backward of max pooling when windows do not overlap ----

/// Whether `max_input_grad` serves the plan: 2x2-wide windows at column stride 2 and rows that
/// do not overlap (row stride >= kernel rows), no padding, no dilation (MaxPool2d(2) in training).
pub(crate) fn tiles_backward(plan: &Plan) -> bool {
    let (r, c) = (&plan.rows, &plan.cols);
    c.stride == 2 && c.kernel == 2 && c.dilation == 1 && c.pad_before == 0 && r.pad_before == 0 && r.dilation == 1 && r.stride >= r.kernel && simd::level() == SimdLevel::Avx512
}

/// The input gradient of one plane of max pooling from the saved first argmaxes: every input
/// element is written once (its window's gradient where it is the argmax, else 0), so the
/// gradient needs neither zeroing nor a scatter. Needs `tiles_backward(plan)`.
pub(crate) fn max_input_grad(plan: &Plan, g: &[f32], idx: &[i32], dst: &mut [f32]) {
    debug_assert!(tiles_backward(plan));
    // SAFETY: `tiles_backward` checked AVX-512 and the geometry; the kernel checks the lengths.
    unsafe { max_input_grad_tiles(plan, g, idx, dst) }
}

/// SAFETY: AVX-512F; `tiles_backward(plan)`.
#[target_feature(enable = "avx512f")]
unsafe fn max_input_grad_tiles(plan: &Plan, g: &[f32], idx: &[i32], dst: &mut [f32]) {
    let (r, c) = (&plan.rows, &plan.cols);
    let (w, ow) = (c.len, c.out);
    assert!(g.len() == plan.out_plane() && idx.len() == g.len() && dst.len() == plan.in_plane(), "pooling plane sizes");
    let low = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let high = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Input columns 0..2·ow belong to windows; those after (an odd width) to none.
    let covered = 2 * ow;
    for iy in 0..r.len {
        let row = &mut dst[iy * w..(iy + 1) * w];
        let (oy, ky) = (iy / r.stride, iy % r.stride);
        if oy >= r.out || ky >= r.kernel {
            row.fill(0.0);
            continue;
        }
        row[covered..].fill(0.0);
        for ox0 in (0..ow).step_by(LANES) {
            let store = lanes_inside(ox0 as isize, 1, ow);
            let o = oy * ow + ox0;
            let gv = _mm512_maskz_loadu_ps(store, g.as_ptr().add(o));
            let iv = _mm512_maskz_loadu_epi32(store, idx.as_ptr().add(o));
            for half in 0..2 {
                let col = 2 * ox0 + 16 * half;
                let lanes = lanes_inside(col as isize, 1, covered);
                if lanes == 0 {
                    continue;
                }
                let spread = if half == 0 { low } else { high };
                let here = _mm512_add_epi32(_mm512_set1_epi32((iy * w + col) as i32), iota);
                let hit = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(spread, iv), here);
                let v = _mm512_maskz_mov_ps(hit, _mm512_permutexvar_ps(spread, gv));
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(col), lanes, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::pool::AxisPlan;

    fn axis(len: usize, kernel: usize, stride: usize, pad: (usize, usize)) -> AxisPlan {
        AxisPlan { len, out: (len + pad.0 + pad.1 - kernel) / stride + 1, stride, dilation: 1, pad_before: pad.0, kernel }
    }

    /// Max (first argmax in row-major tap order, NaN winning, +0 for -0) and sum of one window,
    /// from the definition.
    fn window(plan: &Plan, plane: &[f32], oy: usize, ox: usize) -> (f32, i32, f32) {
        let (r, c) = (&plan.rows, &plan.cols);
        let (mut best, mut at, mut sum) = (None::<f32>, -1, 0.0f32);
        for ky in 0..r.kernel {
            for kx in 0..c.kernel {
                let (iy, ix) = ((oy * r.stride + ky) as isize - r.pad_before as isize, (ox * c.stride + kx) as isize - c.pad_before as isize);
                if iy < 0 || ix < 0 || iy as usize >= r.len || ix as usize >= c.len {
                    continue;
                }
                let i = iy as usize * c.len + ix as usize;
                let v = plane[i];
                sum += v;
                let take = match best {
                    None => true,
                    Some(b) => !b.is_nan() && (v > b || v.is_nan()),
                };
                if take {
                    (best, at) = (Some(v), i as i32);
                }
            }
        }
        (best.unwrap() + 0.0, at, sum)
    }

    #[test]
    fn matches_the_definition_with_ties_nan_infinities_and_padding() {
        if simd::level() != SimdLevel::Avx512 {
            return;
        }
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        for (kh, kw, sy, pad_rows, pad_cols) in [(2, 2, 2, (0, 0), (0, 0)), (3, 3, 2, (0, 0), (0, 0)), (3, 3, 2, (1, 1), (1, 1)), (3, 3, 2, (0, 1), (0, 1)), (1, 3, 1, (0, 0), (2, 0)), (2, 2, 3, (1, 0), (1, 1))] {
            for (h, w) in [(5, 5), (7, 33), (9, 40), (4, 70)] {
                let plan = Plan { planes: 1, rows: axis(h, kh, sy, pad_rows), cols: axis(w, kw, 2, pad_cols) };
                // Small integers (ties), with NaN, ±inf and -0 sprinkled in.
                let plane: Vec<f32> = (0..h * w)
                    .map(|_| match next() % 40 {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        2 => f32::INFINITY,
                        3 => -0.0,
                        k => (k % 5) as f32 - 2.0,
                    })
                    .collect();
                let n = plan.out_plane();
                let (mut out, mut idx, mut values) = (vec![0.0; n], vec![0; n], vec![0.0; n]);
                max_plane(&plan, &plane, &mut out, &mut idx);
                max_plane(&plan, &plane, &mut values, &mut []);
                let finite: Vec<f32> = plane.iter().map(|&v| if v.is_finite() { v } else { 1.5 }).collect();
                let (scale, mut avg) = (vec![0.25; n], vec![0.0; n]);
                avg_plane(&plan, &scale, &finite, &mut avg);
                for oy in 0..plan.rows.out {
                    for ox in 0..plan.cols.out {
                        let o = oy * plan.cols.out + ox;
                        let what = format!("{kh}x{kw} rows stride {sy} pads {pad_rows:?} {pad_cols:?} on {h}x{w}, output ({oy}, {ox})");
                        let (want, at, _) = window(&plan, &plane, oy, ox);
                        assert!(out[o].to_bits() == want.to_bits() || (out[o].is_nan() && want.is_nan()), "{what}: max {} vs {want}", out[o]);
                        assert!(values[o].to_bits() == want.to_bits() || (values[o].is_nan() && want.is_nan()), "{what}: max without indices {} vs {want}", values[o]);
                        assert_eq!(idx[o], at, "{what}: argmax");
                        let sum = window(&plan, &finite, oy, ox).2;
                        assert!((avg[o] - 0.25 * sum).abs() <= 1e-6 * (1.0 + sum.abs()), "{what}: average {} vs {}", avg[o], 0.25 * sum);
                    }
                }
                if tiles_backward(&plan) {
                    let g: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
                    let mut want = vec![0.0; plan.in_plane()];
                    idx.iter().zip(&g).for_each(|(&i, &v)| want[i as usize] += v);
                    let mut got = vec![f32::NAN; plan.in_plane()];
                    max_input_grad(&plan, &g, &idx, &mut got);
                    assert_eq!(got, want, "backward {kh}x{kw} on {h}x{w}");
                }
            }
        }
    }
}
