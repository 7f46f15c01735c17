//! The elementwise op table of the GPU: for each of kiln-core's UnaryOp and BinaryOp, the WGSL
//! expression of its forward value, and for unary ops its derivative beside it, as in kiln-core's
//! unary.rs. map.rs turns a row into a kernel.
//!
//! Names in the expressions: unary `x` (input), `y` (output, in derivatives), `alpha`;
//! binary `a`, `b`.
//!
//! WGSL leaves several builtins loose where kiln-core is exact, so the prelude replaces them:
//! `pow` is undefined for negative bases and 0^0; `sin`/`cos` are only specified on [-pi, pi],
//! and there only to 2^-11 absolute error (SwiftShader's reach 1.9e-4), so Kiln has its own;
//! `tanh` has no accuracy bound for large |x| (drivers that compute it from exp or sinh/cosh can
//! overflow to NaN); there is no log1p. WGSL also lets
//! implementations assume no NaN or infinity reaches an op, so NaN propagation is not promised
//! the way kiln-core promises it (relu(NaN) = NaN on the CPU; on a GPU it may be 0), nor
//! infinities (SwiftShader's log(0) is -88 and its log(NaN) 89): the prelude's functions test NaN
//! and infinity on the bits and give kiln-core's value for them, and hand the builtins only
//! finite arguments.

use kiln_core::ops::{BinaryOp, UnaryOp};
use kiln_core::DType;

/// WGSL helpers every elementwise kernel may call.
pub const PRELUDE: &str = r#"
// Infinity and NaN from their bits through a parameter: a constant expression that evaluates to
// inf or NaN is a shader-creation error in WGSL (Chromium's Tint enforces it; naga does not).
fn kiln_from_bits(bits: u32) -> f32 { return bitcast<f32>(bits); }
fn kiln_inf() -> f32 { return kiln_from_bits(0x7f800000u); }
fn kiln_nan() -> f32 { return kiln_from_bits(0x7fc00000u); }
// NaN tested on the bits: a float comparison (x != x) may be folded away, since WGSL lets
// compilers assume no NaN reaches an op.
fn kiln_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn kiln_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
// NaN or ±inf.
fn kiln_nonfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) >= 0x7f800000u; }
// A signed infinity or zero carrying the sign of a·b (the sign bits xor'ed).
fn kiln_signed(a: f32, b: f32, magnitude: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(magnitude) | ((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u));
}
// e^x to a few ulp over the whole range: the builtin's error grows with |x| (3 + 2|x| ulp), so
// x is split as k ln2 + r (Cody-Waite, ln2 in two parts) and e^r (|r| <= ln2/2) scaled by 2^k.
fn kiln_exp(x: f32) -> f32 {
  if (kiln_isnan(x)) { return x; }
  if (x > 88.72284) { return kiln_inf(); }
  if (x < -103.97208) { return 0.0; }
  let k = round(x * 1.442695);
  let r = (x - k * 0.6933594) + k * 2.1219444e-4;
  // In two halves: one ldexp of 2^128 would step outside the exponents WGSL defines.
  let half = i32(k) / 2;
  return ldexp(ldexp(exp(r), half), i32(k) - half);
}
// sin(x), or cos(x) when `cosine`, as Cephes' sinf/cosf: x = j pi/2 + r with |r| <= pi/4 (pi/2
// in three parts; the first, 1.5703125, has 8 significant bits, so j * it is exact for |j| < 2^16,
// i.e. |x| < 1e5), then a minimax polynomial for sin r or cos r chosen by the quadrant j mod 4
// (cos x = sin(x + pi/2): one quadrant on). The builtins are specified only to 2^-11 absolute.
fn kiln_sincos(x: f32, cosine: bool) -> f32 {
  if (kiln_nonfinite(x)) { return kiln_nan(); }
  let j = round(x * 0.63661977);
  let r = ((x - j * 1.5703125) - j * 4.8375129699707031e-4) - j * 7.5497899548918821e-8;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * (-1.9515295891e-4)));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let q = (i32(j) + select(0, 1, cosine)) & 3;
  let v = select(s, c, (q & 1) == 1);
  return select(v, -v, q >= 2);
}
// log with kiln-core's values where WGSL leaves them open: NaN below 0 and for NaN, -inf at 0,
// inf at inf.
fn kiln_log(x: f32) -> f32 {
  if (kiln_isnan(x) || x < 0.0) { return kiln_nan(); }
  if (x == 0.0) { return -kiln_inf(); }
  if (kiln_isinf(x)) { return x; }
  return log(x);
}
// a / b with IEEE's special cases spelled out (an implementation may divide through a
// reciprocal): x/0 is a signed inf (0/0 NaN), x/inf a signed 0 (inf/inf NaN).
fn kiln_div(a: f32, b: f32) -> f32 {
  if (kiln_isnan(a) || kiln_isnan(b)) { return kiln_nan(); }
  if (b == 0.0) { return select(kiln_signed(a, b, kiln_inf()), kiln_nan(), a == 0.0); }
  if (kiln_isinf(b)) { return select(kiln_signed(a, b, 0.0), kiln_nan(), kiln_isinf(a)); }
  if (kiln_isinf(a)) { return kiln_signed(a, b, kiln_inf()); }
  return a / b;
}
// tanh(x) = sign(x)(1 - e^-2|x|)/(1 + e^-2|x|) never overflows; near 0 the odd Taylor series
// avoids the cancellation in 1 - e^-2|x|.
fn kiln_tanh(x: f32) -> f32 {
  let ax = abs(x);
  let x2 = x * x;
  let small = x * (1.0 + x2 * (-0.33333334 + x2 * (0.13333334 + x2 * (-0.053968254 + x2 * 0.021869488))));
  let e = kiln_exp(-2.0 * ax);
  // NaN takes the series, which keeps it (sign(NaN) is left open).
  return select(sign(x) * (1.0 - e) / (1.0 + e), small, ax < 0.3 || kiln_isnan(x));
}
fn kiln_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + kiln_exp(-x)); }
// erf to 1.5e-7 (Abramowitz & Stegun 7.1.26), as kiln-core's math::erf.
fn kiln_erf(x: f32) -> f32 {
  let ax = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * ax);
  let p = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));
  return sign(x) * (1.0 - p * exp(-ax * ax));
}
// x Φ(x) underflows to 0 below -15 (and -inf * 0 would be NaN).
fn kiln_gelu(x: f32) -> f32 { return select(0.5 * x * (1.0 + kiln_erf(x * 0.70710678)), 0.0, x < -15.0); }
// log(1 + t) keeping small t. The builtin log is only accurate to 2^-21 absolute near 1, so small
// t take the series (4 terms: 1e-9 relative for |t| < 0.01); others log(u) t / (u - 1), which
// cancels the rounding of u = 1 + t.
fn kiln_log1p(t: f32) -> f32 {
  if (abs(t) < 0.01) { return t * (1.0 - t * (0.5 - t * (0.33333334 - t * 0.25))); }
  let u = 1.0 + t;
  return log(u) * (t / (u - 1.0));
}
// tanh(softplus(x)), mish's gate.
fn kiln_mish_gate(x: f32) -> f32 { return kiln_tanh(max(x, 0.0) + kiln_log1p(exp(-abs(x)))); }
// a^b with powf's rules: b = 0 or a = 1 gives 1, otherwise NaN in gives NaN; 0^b is 0 or inf;
// an infinite exponent gives 0 or inf by whether |a| is above 1 (|a| = 1: 1); an infinite base
// is 0 or inf by the sign of b; a negative base needs an integer exponent (odd keeps the sign),
// anything else is NaN. Only finite positive bases and finite exponents reach the builtin.
fn kiln_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0 || a == 1.0) { return 1.0; }
  if (kiln_isnan(a) || kiln_isnan(b)) { return kiln_nan(); }
  let integer = floor(b) == b;
  let odd = integer && abs(b) % 2.0 == 1.0;
  if (kiln_isinf(b)) {
    if (abs(a) == 1.0) { return 1.0; }
    return select(0.0, kiln_inf(), (abs(a) > 1.0) == (b > 0.0));
  }
  if (a == 0.0 || kiln_isinf(a)) {
    let m = select(0.0, kiln_inf(), (a == 0.0) == (b < 0.0));
    // An odd integer exponent keeps the base's sign: (-0)^-1 = -inf, (-inf)^3 = -inf.
    return select(m, kiln_signed(a, kiln_from_bits(0x3f800000u), m), odd);
  }
  let m = pow(abs(a), b);
  if (a > 0.0) { return m; }
  return select(select(kiln_nan(), m, integer), -m, odd);
}
"#;

/// A unary op's WGSL: forward value of `x`, and dy/dx from `x`, `y`, `alpha`.
#[derive(Clone, Copy, Debug)]
pub struct UnaryWgsl {
    pub forward: &'static str,
    pub derivative: &'static str,
}

/// The row of `op`; None for an op kiln-core gained after this table was written (the coverage
/// test in tests/gpu/elementwise.rs fails until a row is added).
#[allow(unreachable_patterns)]
pub fn unary(op: UnaryOp) -> Option<UnaryWgsl> {
    use UnaryOp::*;
    let (forward, derivative) = match op {
        Neg => ("-x", "-1.0"),
        // sign(0) = 0: the derivative of |x| at 0 is taken as 0, as on the CPU.
        Abs => ("abs(x)", "sign(x)"),
        Exp => ("kiln_exp(x)", "y"),
        Log => ("kiln_log(x)", "1.0 / x"),
        Sqrt => ("sqrt(x)", "0.5 / y"),
        Rsqrt => ("inverseSqrt(x)", "-0.5 * y * y * y"),
        Square => ("x * x", "2.0 * x"),
        Sin => ("kiln_sincos(x, false)", "kiln_sincos(x, true)"),
        Cos => ("kiln_sincos(x, true)", "-kiln_sincos(x, false)"),
        Tanh => ("kiln_tanh(x)", "1.0 - y * y"),
        Sigmoid => ("kiln_sigmoid(x)", "y * (1.0 - y)"),
        // NaN stays NaN, as on the CPU.
        Relu => ("select(0.0, x, x > 0.0 || kiln_isnan(x))", "select(0.0, 1.0, x > 0.0)"),
        LeakyRelu => ("select(alpha * x, x, x > 0.0)", "select(alpha, 1.0, x > 0.0)"),
        // For x <= 0, y = alpha(e^x - 1), so dy/dx = alpha e^x = y + alpha.
        Elu => ("select(alpha * (kiln_exp(x) - 1.0), x, x > 0.0 || kiln_isnan(x))", "select(y + alpha, 1.0, x > 0.0)"),
        // d/dx x·Φ(x) = Φ(x) + x·φ(x).
        Gelu => ("kiln_gelu(x)", "0.5 * (1.0 + kiln_erf(x * 0.70710678)) + x * 0.3989423 * exp(-0.5 * x * x)"),
        // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, small values kept.
        Softplus => ("max(x, 0.0) + kiln_log1p(exp(-abs(x)))", "kiln_sigmoid(x)"),
        // x / (1 + |x|), with ±1 at ±inf (where the quotient is inf/inf), as on the CPU.
        Softsign => ("select(x / (1.0 + abs(x)), sign(x), abs(x) > 3.4e38)", "1.0 / ((1.0 + abs(x)) * (1.0 + abs(x)))"),
        // x·tanh(softplus(x)); at −inf the limit 0 (−inf·0 would be NaN), as on the CPU.
        Mish => (
            "select(x * kiln_mish_gate(x), 0.0, x < -3.4e38)",
            "select(kiln_mish_gate(x) + x * (1.0 - kiln_mish_gate(x) * kiln_mish_gate(x)) * kiln_sigmoid(x), 0.0, x < -3.4e38)",
        ),
        _ => return None,
    };
    Some(UnaryWgsl { forward, derivative })
}

/// A binary op's WGSL: the value of `a`, `b` and its dtype. Gradients need no rows here:
/// kiln-core's autograd builds them from forward ops, which run on the device.
#[derive(Clone, Copy, Debug)]
pub struct BinaryWgsl {
    pub forward: &'static str,
    pub out: DType,
}

/// The row of `op`; None for an op this table does not know yet (see `unary`).
#[allow(unreachable_patterns)]
pub fn binary(op: BinaryOp) -> Option<BinaryWgsl> {
    use BinaryOp::*;
    let arith = |forward| BinaryWgsl { forward, out: DType::F32 };
    let compare = |forward| BinaryWgsl { forward, out: DType::Bool };
    Some(match op {
        Add => arith("a + b"),
        Sub => arith("a - b"),
        Mul => arith("a * b"),
        Div => arith("kiln_div(a, b)"),
        Pow => arith("kiln_pow(a, b)"),
        // A NaN on either side wins, as on the CPU (a is kept when a > b or a is NaN).
        Maximum => arith("select(b, a, a > b || kiln_isnan(a))"),
        Minimum => arith("select(b, a, a < b || kiln_isnan(a))"),
        // IEEE: every comparison with a NaN is false except notEqual (checked on the bits).
        Equal => compare("select(0u, 1u, a == b && !(kiln_isnan(a) || kiln_isnan(b)))"),
        NotEqual => compare("select(0u, 1u, a != b || kiln_isnan(a) || kiln_isnan(b))"),
        Less => compare("select(0u, 1u, a < b && !(kiln_isnan(a) || kiln_isnan(b)))"),
        LessEqual => compare("select(0u, 1u, a <= b && !(kiln_isnan(a) || kiln_isnan(b)))"),
        Greater => compare("select(0u, 1u, a > b && !(kiln_isnan(a) || kiln_isnan(b)))"),
        GreaterEqual => compare("select(0u, 1u, a >= b && !(kiln_isnan(a) || kiln_isnan(b)))"),
        _ => return None,
    })
}
