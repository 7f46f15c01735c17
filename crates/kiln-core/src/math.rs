//! Scalar math written without branches or libm calls, so loops over it vectorize under every
//! SIMD level. Accuracy is checked against std in the tests below (a few ulp).

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln(2) split in two so that n*ln2 is subtracted exactly (Cody-Waite range reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// 1.5 · 2²³: adding it to |v| < 2²² rounds v to an integer in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// e^xc as (er, n) with e^xc = er · 2ⁿ: Cody-Waite reduction to r in [-ln2/2, ln2/2] and the
/// Cephes expf minimax polynomial. xc must already be clamped to the caller's range. n is
/// rounded by adding ROUNDER and read from the sum's bits: `floor` and a float-to-int `as`
/// (saturating, with NaN checks) kept the loop from vectorizing fully (exp 1.84 ns per element on
/// one AVX-512 thread, against 0.45 for relu's pass over the same memory).
#[inline(always)]
fn exp_parts(xc: f32) -> (f32, i32) {
    let t = xc * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let n_int = t.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    (p * r * r + r + 1.0, n_int)
}

/// e^x with ~1 ulp error; overflow gives inf, underflow 0, NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let (er, n) = exp_parts(x.clamp(-87.336_55, 88.722_83));
    // 2^n applied in two halves: near the top of the range n is 128, one past the largest
    // exponent, though the product itself is finite.
    let half = n >> 1;
    let scale1 = f32::from_bits(((half + 127) << 23) as u32);
    let scale2 = f32::from_bits(((n - half + 127) << 23) as u32);
    let y = er * scale1 * scale2;
    let y = if x > 88.722_83 { f32::INFINITY } else { y };
    if x < -87.336_55 { 0.0 } else { y }
}

/// e^x for the x <= 0 of a softmax shifted by its maximum (fine up to x < 88): `exp` without the
/// overflow path, one 2ⁿ scale instead of two, and a compare-select clamp (f32::max's IEEE maxNum
/// has no single SIMD instruction on x86 or WASM). Below −87 (and for −inf) 0; NaN stays NaN.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let (er, n) = exp_parts(if x > -87.0 { x } else { -87.0 });
    let y = er * f32::from_bits(((n + 127) << 23) as u32); // n >= -126: one normal float
    if x < -87.0 { 0.0 } else if x.is_nan() { x } else { y }
}

/// 1 / (1 + e^-x), saturating cleanly at both ends.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh: an odd Taylor polynomial near 0 (where 1 - 2/(e^2x + 1) would cancel), exp elsewhere.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let ax = x.abs();
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0 + x2 * (-1382.0 / 155_925.0))))));
    let big = 1.0 - 2.0 / (exp(2.0 * ax) + 1.0);
    let big = if x < 0.0 { -big } else { big };
    if ax < 0.3 { small } else if x.is_nan() { x } else { big }
}

/// erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26). e^(-x²) is never positive, so it takes
/// `exp_nonpositive` (no overflow path, one 2ⁿ scale; the same values). A rational x·P(x²)/Q(x²)
/// without exp (Eigen's float erf) ran GELU about twice as fast on one AVX-512 core but is off by
/// up to 4e-7 near ±1, which GELU's negative tail (0.5·x·(1 + erf)) turns into errors above 1e-6:
/// tests/unary.test.ts refused it (docs/onnx-speed-log.md, "Transformer rows per core").
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let ax = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * ax);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_nonpositive(-ax * ax);
    y.copysign(x)
}

/// GELU, the exact (erf) form used by PyTorch's default `nn.GELU()`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let y = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    // -inf · 0 would be NaN; the limit is 0.
    if x == f32::NEG_INFINITY { 0.0 } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel_err(a: f32, b: f32) -> f32 {
        if a == b { 0.0 } else { (a - b).abs() / b.abs().max(1e-30) }
    }

    #[test]
    fn exp_matches_std() {
        let mut x = -90.0f32;
        while x < 90.0 {
            let (got, want) = (exp(x), x.exp());
            assert!(rel_err(got, want) < 3e-7 || want < 1.2e-38, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn exp_nonpositive_matches_std() {
        let mut x = -100.0f32;
        while x < 1.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!(rel_err(got, want) < 3e-7 || want < 1.7e-38, "exp_nonpositive({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_and_sigmoid_match_std() {
        let mut x = -20.0f32;
        while x < 20.0 {
            assert!((tanh(x) - x.tanh()).abs() < 3e-7 + 3e-7 * x.tanh().abs(), "tanh({x})");
            let s = 1.0 / (1.0 + (-x as f64).exp());
            assert!(((sigmoid(x) as f64) - s).abs() < 1e-6 * s.max(1e-6), "sigmoid({x})");
            x += 0.0071;
        }
        assert_eq!(tanh(1e-20), 1e-20);
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!(tanh(f32::INFINITY), 1.0);
    }

    /// erfc(x) for x >= 0 in float64, independent of the code under test: 1 − the Maclaurin series
    /// below 3 (terms up to ~170 there: about 1e-14 absolute), the continued fraction
    /// e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) above (relative error ~1e-15).
    fn erfc64(x: f64) -> f64 {
        if x < 3.0 {
            let (mut sum, mut term, mut n) = (0.0f64, x, 0.0f64);
            while term.abs() > 1e-18 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            1.0 - sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = x;
            for k in (1..=80).rev() {
                f = x + (k as f64 / 2.0) / f;
            }
            (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
        }
    }

    /// 1 + erf(z) in float64, without cancellation for z < 0.
    fn one_plus_erf64(z: f64) -> f64 {
        if z < 0.0 { erfc64(-z) } else { 2.0 - erfc64(z) }
    }

    #[test]
    fn erf_and_gelu_match_float64_on_a_dense_grid() {
        // Every 1e-4 over [-7, 7] (140,001 points), erf against the float64 reference. Measured
        // (2026-12-07): 6.4e-7 at most, about 11 ulp of values near 1: float rounding of
        // 1 − t·P(t)·e^(-x²) (each factor near 1) on top of Abramowitz & Stegun's 1.5e-7.
        let mut worst = 0.0f64;
        for i in -70_000..=70_000 {
            let x = i as f32 * 1e-4;
            // erf(x) = 1 − erfc(x) = 1 − (1 + erf(−x)).
            let want = 1.0 - one_plus_erf64(-(x as f64));
            worst = worst.max((erf(x) as f64 - want).abs());
        }
        eprintln!("erf: max |error| {worst:.3e} on [-7, 7]");
        assert!(worst < 7e-7, "erf: max |error| {worst:e}");
        // GELU: the error relative to max(|value|, 1) (absolute for the small values of the
        // negative tail, where 1 + erf(x/√2) cancels and erf's absolute error shows whole).
        let mut worst_scaled = 0.0f64;
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-4;
            let want = 0.5 * x as f64 * one_plus_erf64(x as f64 / std::f64::consts::SQRT_2);
            worst_scaled = worst_scaled.max((gelu(x) as f64 - want).abs() / want.abs().max(1.0));
        }
        eprintln!("gelu: max |error| / max(|gelu|, 1) {worst_scaled:.3e} on [-10, 10]");
        assert!(worst_scaled < 1e-6, "gelu: |error| / max(|gelu|, 1) {worst_scaled:e}");
    }

    #[test]
    fn erf_is_close() {
        // Reference values of erf.
        let table = [(0.0, 0.0), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (2.0, 0.995_322_3), (-1.5, -0.966_105_1), (-0.1, -0.112_462_92), (0.01, 0.011_283_416), (3.0, 0.999_977_9), (-3.3, -0.999_996_9), (4.5, 1.0), (-10.0, -1.0)];
        for (x, want) in table {
            assert!((erf(x) - want).abs() < 7e-7, "erf({x}) = {}, want {want}", erf(x));
        }
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert!(erf(f32::NAN).is_nan());
        // Odd, and monotone within its error.
        let mut last = -1.0f32;
        let mut x = -5.0f32;
        while x < 5.0 {
            assert_eq!(erf(-x), -erf(x));
            assert!(erf(x) >= last - 7e-7, "erf is not monotone at {x}: {} after {last}", erf(x));
            last = erf(x);
            x += 0.001;
        }
    }
}
