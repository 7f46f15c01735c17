//! The elementwise op table of the GPU: for each of kiln-core's UnaryOp and BinaryOp, the WGSL
//! expression of its forward value, and for unary ops its derivative beside it, as in kiln-core's
//! unary.rs. map.rs turns a row into a kernel.
//!
//! Names in the expressions: unary `x` (input), `y` (output, in derivatives), `alpha`;
//! binary `a`, `b`.
//!
//! WGSL leaves several builtins loose where kiln-core is exact, so the prelude replaces them:
//! `pow` is undefined for negative bases and 0^0; `sin`/`cos` are only specified on [-pi, pi];
//! `tanh` has no accuracy bound for large |x| (drivers that compute it from exp or sinh/cosh can
//! overflow to NaN); there is no log1p. WGSL also lets
//! implementations assume no NaN or infinity reaches an op, so NaN propagation is not promised
//! the way kiln-core promises it (relu(NaN) = NaN on the CPU; on a GPU it may be 0).

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
// e^x to a few ulp over the whole range: the builtin's error grows with |x| (3 + 2|x| ulp), so
// x is split as k ln2 + r (Cody-Waite, ln2 in two parts) and e^r (|r| <= ln2/2) scaled by 2^k.
fn kiln_exp(x: f32) -> f32 {
  if (x > 88.72284) { return kiln_inf(); }
  if (x < -103.97208) { return 0.0; }
  let k = round(x * 1.442695);
  let r = (x - k * 0.6933594) + k * 2.1219444e-4;
  // In two halves: one ldexp of 2^128 would step outside the exponents WGSL defines.
  let half = i32(k) / 2;
  return ldexp(ldexp(exp(r), half), i32(k) - half);
}
// Builtin sin/cos are specified only on [-pi, pi] (2^-11 absolute error there): reduce first,
// subtracting k*2pi in two parts (6.28125 is exact in f32, so k*6.28125 is exact for |k| < 2^16).
fn kiln_angle(x: f32) -> f32 {
  let k = round(x * 0.15915494);
  return (x - k * 6.28125) - k * 0.0019353072;
}
// tanh(x) = sign(x)(1 - e^-2|x|)/(1 + e^-2|x|) never overflows; near 0 the odd Taylor series
// avoids the cancellation in 1 - e^-2|x|.
fn kiln_tanh(x: f32) -> f32 {
  let ax = abs(x);
  let x2 = x * x;
  let small = x * (1.0 + x2 * (-0.33333334 + x2 * (0.13333334 + x2 * (-0.053968254 + x2 * 0.021869488))));
  let e = exp(-2.0 * ax);
  return select(sign(x) * (1.0 - e) / (1.0 + e), small, ax < 0.3);
}
fn kiln_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
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
// a^b with powf's rules: b = 0 gives 1, 0^b is 0 or inf, a negative base needs an integer
// exponent (odd keeps the sign), anything else is NaN.
fn kiln_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(0.0, kiln_inf(), b < 0.0); }
  let m = pow(abs(a), b);
  if (a > 0.0) { return m; }
  let integer = floor(b) == b;
  let odd = integer && abs(b) % 2.0 == 1.0;
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
        Log => ("log(x)", "1.0 / x"),
        Sqrt => ("sqrt(x)", "0.5 / y"),
        Rsqrt => ("inverseSqrt(x)", "-0.5 * y * y * y"),
        Square => ("x * x", "2.0 * x"),
        Sin => ("sin(kiln_angle(x))", "cos(kiln_angle(x))"),
        Cos => ("cos(kiln_angle(x))", "-sin(kiln_angle(x))"),
        Tanh => ("kiln_tanh(x)", "1.0 - y * y"),
        Sigmoid => ("kiln_sigmoid(x)", "y * (1.0 - y)"),
        // NaN stays NaN, as on the CPU.
        Relu => ("select(0.0, x, x > 0.0 || kiln_isnan(x))", "select(0.0, 1.0, x > 0.0)"),
        LeakyRelu => ("select(alpha * x, x, x > 0.0)", "select(alpha, 1.0, x > 0.0)"),
        // For x <= 0, y = alpha(e^x - 1), so dy/dx = alpha e^x = y + alpha.
        Elu => ("select(alpha * (exp(x) - 1.0), x, x > 0.0)", "select(y + alpha, 1.0, x > 0.0)"),
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
        Div => arith("a / b"),
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
