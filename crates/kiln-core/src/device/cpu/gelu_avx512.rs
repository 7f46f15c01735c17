//! GELU (the erf form) written with AVX-512 intrinsics: math::gelu's formula, evaluated with
//! fused multiply-adds, a reciprocal estimate refined once in place of the division, and
//! exp_avx512's e^(−z²). The portable loop (unary.rs's map over math::gelu) compiles to
//! separate multiplies and adds (Rust does not contract them) and a `vdivps`; this one does about
//! half the work per vector. Measured on the ONNX Transformer's feed-forward output ([128, 1024],
//! one thread, Intel Xeon (Emerald Rapids), load average 4-6): docs/onnx-speed-log.md, "Attention
//! and GELU at batch 1".
//!
//! 1 + erf(z) is formed without cancellation: with q = t·P(t)·e^(−z²) (Abramowitz & Stegun
//! 7.1.26, erf(|z|) = 1 − q), it is 2 − q for z ≥ 0 and q itself for z < 0.

use super::exp_avx512::exp16;
use std::arch::x86_64::*;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// From |z| = 8.9 on, 1 + erf(z) is 2 or 0 to within 1e-36 (GELU is x or 0): |z| is capped
/// there, so that e^(−z²) stays a normal float (exp16 never makes a subnormal, which Intel
/// cores fix up in microcode) and an infinite z gives a finite t, and q is taken as 0 beyond.
/// (min returns its second operand for a NaN z; the NaN comes through x.)
const Z_MAX: f32 = 8.9;

/// GELU of 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn gelu16(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, _mm512_set1_ps(FRAC_1_SQRT_2));
    let az = _mm512_min_ps(_mm512_abs_ps(z), _mm512_set1_ps(Z_MAX));
    // t = 1 / (1 + p·|z|): a 14-bit estimate and one Newton step (about 2⁻²⁸ relative).
    let d = _mm512_fmadd_ps(az, _mm512_set1_ps(0.327_591_1), _mm512_set1_ps(1.0));
    let r = _mm512_rcp14_ps(d);
    let t = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)));
    let mut poly = _mm512_set1_ps(1.061_405_4);
    for c in [-1.453_152_1, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
    }
    poly = _mm512_mul_ps(poly, t);
    // e^(−z²) (z² <= Z_MAX² keeps it normal).
    let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));
    let near = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(az, _mm512_set1_ps(Z_MAX));
    let q = _mm512_maskz_mul_ps(near, poly, e);
    // 1 + erf(z): 2 − q for z >= 0, q below.
    let non_negative = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(z, _mm512_setzero_ps());
    let one_plus_erf = _mm512_mask_blend_ps(non_negative, q, _mm512_sub_ps(_mm512_set1_ps(2.0), q));
    let y = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5)), one_plus_erf);
    // GELU is 0 from z = −Z_MAX down (x · 0 would be NaN at −inf).
    let far_negative = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(z, _mm512_set1_ps(-Z_MAX));
    _mm512_mask_mov_ps(y, far_negative, _mm512_setzero_ps())
}

/// out[i] = gelu(x[i]) (the shorter of the two lengths).
///
/// # Safety
/// The CPU must run AVX-512F (`simd::level()` is Avx512).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gelu(x: &[f32], out: &mut [f32]) {
    gelu_raw(x.as_ptr(), out.as_mut_ptr(), x.len().min(out.len()));
}

/// data[i] = gelu(data[i]).
///
/// # Safety
/// As `gelu`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gelu_in_place(data: &mut [f32]) {
    let ptr = data.as_mut_ptr();
    gelu_raw(ptr, ptr, data.len());
}

/// dst[i] = gelu(src[i]) for i < len; src and dst may be the same memory (each vector is read
/// before it is written) but may not overlap otherwise.
#[target_feature(enable = "avx512f")]
unsafe fn gelu_raw(src: *const f32, dst: *mut f32, len: usize) {
    let mut i = 0;
    while i + 16 <= len {
        _mm512_storeu_ps(dst.add(i), gelu16(_mm512_loadu_ps(src.add(i))));
        i += 16;
    }
    if i < len {
        let mask: __mmask16 = (1u32 << (len - i)) as u16 - 1;
        _mm512_mask_storeu_ps(dst.add(i), mask, gelu16(_mm512_maskz_loadu_ps(mask, src.add(i))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu64(x: f64) -> f64 {
        // std has no erf: Simpson's rule on 2000 intervals of the integral of e^(−t²).
        let n = 2000;
        let z = x / std::f64::consts::SQRT_2;
        let h = z / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(z);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        let erf = s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt();
        0.5 * x * (1.0 + erf)
    }

    #[test]
    fn matches_float64_and_the_portable_formula() {
        if !crate::device::cpu::gemm_avx512::cpu_supports() {
            return;
        }
        let xs: Vec<f32> = (0..=8000).map(|i| -20.0 + i as f32 * 0.005).collect();
        let mut ys = vec![0.0f32; xs.len()];
        // SAFETY: the CPU runs AVX-512F (checked above).
        unsafe { gelu(&xs, &mut ys) };
        let mut worst = 0.0f64;
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = gelu64(x as f64);
            worst = worst.max((y as f64 - want).abs() / want.abs().max(1.0));
            assert!((y - crate::math::gelu(x)).abs() <= 2e-6 * x.abs().max(1.0), "gelu({x}): {y} against the portable {}", crate::math::gelu(x));
        }
        assert!(worst < 1e-6, "gelu: |error| / max(|gelu|, 1) {worst:e}");
    }

    #[test]
    fn special_values_and_tails() {
        if !crate::device::cpu::gemm_avx512::cpu_supports() {
            return;
        }
        let xs = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, f32::MAX, f32::MIN, 3.0, -3.0];
        // Lengths around the vector width: the masked tail.
        for len in [1, 5, 13, 16, 17, 29] {
            let x: Vec<f32> = (0..len).map(|i| xs[i % xs.len()]).collect();
            let mut y = x.clone();
            // SAFETY: as above.
            unsafe { gelu_in_place(&mut y) };
            for (&a, &b) in x.iter().zip(&y) {
                let want = crate::math::gelu(a);
                assert!(a.is_nan() == b.is_nan(), "gelu({a}) = {b}");
                if !a.is_nan() {
                    assert!(b == want || (b - want).abs() <= 2e-6 * want.abs().max(1.0), "gelu({a}) = {b}, want {want}");
                }
            }
        }
    }
}
