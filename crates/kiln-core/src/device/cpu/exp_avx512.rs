//! e^x over AVX-512 vectors with intrinsics: math::exp_parts's Cody-Waite reduction and Cephes
//! polynomial, evaluated with fused multiply-adds and `scalef` for the 2ⁿ. Rust does not contract
//! a·b + c into an FMA, so the portable loops over math.rs run about twice the instructions; the
//! hot exps of the Transformer (attention's softmax, GELU's erf) use these instead
//! (docs/onnx-speed-log.md, "Attention and GELU at batch 1").

use std::arch::x86_64::*;

/// Inputs are clamped from below here: e^(−87) is still a normal float, so `scalef` never makes
/// a subnormal (Intel cores fix those up in microcode, ~150 cycles each).
const LOW: f32 = -87.0;

/// e^u for 16 lanes with u in [LOW, 88] (the caller clamps; NaN gives NaN).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp16(u: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(u, _mm512_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), u);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    _mm512_scalef_ps(p, n)
}

/// x ← e^(x − shift) in place, 0 where x − shift < −87 (−inf included), NaN kept; returns the
/// sum of the new values. For x − shift <= 0 up to rounding (a softmax row shifted by its
/// maximum or its log-normalizer).
///
/// # Safety
/// The CPU must run AVX-512F (`simd::level()` is Avx512).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp_shifted(x: &mut [f32], shift: f32) -> f32 {
    let (ptr, len) = (x.as_mut_ptr(), x.len());
    let shift = _mm512_set1_ps(shift);
    let one = |v: __m512| {
        let d = _mm512_sub_ps(v, shift);
        // max returns its second operand for a NaN d; the NaN is put back below.
        let e = exp16(_mm512_max_ps(d, _mm512_set1_ps(LOW)));
        let e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(d, _mm512_set1_ps(LOW)), _mm512_setzero_ps());
        _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(d, d), d)
    };
    let mut sum = _mm512_setzero_ps();
    let mut i = 0;
    while i + 16 <= len {
        let e = one(_mm512_loadu_ps(ptr.add(i)));
        _mm512_storeu_ps(ptr.add(i), e);
        sum = _mm512_add_ps(sum, e);
        i += 16;
    }
    if i < len {
        let mask: __mmask16 = (1u32 << (len - i)) as u16 - 1;
        let e = _mm512_maskz_mov_ps(mask, one(_mm512_maskz_loadu_ps(mask, ptr.add(i))));
        _mm512_mask_storeu_ps(ptr.add(i), mask, e);
        sum = _mm512_add_ps(sum, e);
    }
    _mm512_reduce_add_ps(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_shifted_matches_std_and_keeps_the_special_values() {
        if !crate::device::cpu::gemm_avx512::cpu_supports() {
            return;
        }
        let mut xs: Vec<f32> = (0..20_000).map(|i| -95.0 + i as f32 * 0.0049).collect();
        xs.extend([f32::NEG_INFINITY, f32::NAN, 0.0, -0.0, 1e-6]);
        for len in [xs.len(), 7, 16, 33] {
            let x = &xs[xs.len() - len..];
            let mut y = x.to_vec();
            // SAFETY: the CPU runs AVX-512F (checked above).
            let sum = unsafe { exp_shifted(&mut y, 0.0) };
            let mut want_sum = 0.0f64;
            for (&a, &b) in x.iter().zip(&y) {
                if a.is_nan() {
                    assert!(b.is_nan(), "exp({a}) = {b}");
                    continue;
                }
                let want = (a as f64).exp();
                want_sum += if a < LOW { 0.0 } else { want };
                if a < LOW {
                    assert_eq!(b, 0.0, "exp({a})");
                } else {
                    assert!(((b as f64 - want) / want).abs() < 3e-7, "exp({a}) = {b}, want {want}");
                }
            }
            if !x.iter().any(|a| a.is_nan()) {
                assert!((sum as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1.0), "sum {sum}, want {want_sum}");
            }
        }
    }
}
