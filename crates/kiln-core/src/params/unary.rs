//! The unary ops: one table row per op gives its name, its scalar formula and its derivative (as
//! a function of the input x, the output y and alpha). The CPU device compiles both into SIMD
//! loops per instruction set through `UnaryOp::visit`; the GPU has its own WGSL rows.

use crate::math;

pub trait UnaryKernel {
    fn apply(x: f32, alpha: f32) -> f32;
    fn derivative(x: f32, y: f32, alpha: f32) -> f32;
}

/// A loop that is generic over the op's kernel (see `UnaryOp::visit`).
pub trait UnaryVisitor {
    type Out;
    fn visit<K: UnaryKernel>(self) -> Self::Out;
}

macro_rules! unary_ops {
    ($($variant:ident $name:literal |$x:ident, $alpha:ident| $body:expr, d |$dx:ident, $dy:ident, $da:ident| $deriv:expr;)*) => {
        /// The unary ops. `alpha` is the slope of leakyRelu and the scale of elu; others ignore it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum UnaryOp { $($variant),* }

        impl UnaryOp {
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(UnaryOp::$variant => $name),* }
            }

            /// Calls `visitor` with this op's kernel type: how a device's loop gets the formula
            /// compiled into it (a generic loop per op, no call per element).
            pub fn visit<V: UnaryVisitor>(self, visitor: V) -> V::Out {
                match self {
                    $(UnaryOp::$variant => {
                        struct K;
                        impl UnaryKernel for K {
                            #[inline(always)]
                            #[allow(unused_variables)]
                            fn apply($x: f32, $alpha: f32) -> f32 { $body }
                            #[inline(always)]
                            #[allow(unused_variables)]
                            fn derivative($dx: f32, $dy: f32, $da: f32) -> f32 { $deriv }
                        }
                        visitor.visit::<K>()
                    })*
                }
            }
        }
    };
}

unary_ops! {
    Neg "neg" |x, a| -x, d |x, y, a| -1.0;
    // The derivative of |x| at 0 is taken as 0, as in PyTorch and tfjs.
    Abs "abs" |x, a| x.abs(), d |x, y, a| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { 0.0 };
    Exp "exp" |x, a| math::exp(x), d |x, y, a| y;
    Log "log" |x, a| x.ln(), d |x, y, a| 1.0 / x;
    Sqrt "sqrt" |x, a| x.sqrt(), d |x, y, a| 0.5 / y;
    Rsqrt "rsqrt" |x, a| 1.0 / x.sqrt(), d |x, y, a| -0.5 * y * y * y;
    Square "square" |x, a| x * x, d |x, y, a| 2.0 * x;
    Sin "sin" |x, a| x.sin(), d |x, y, a| x.cos();
    Cos "cos" |x, a| x.cos(), d |x, y, a| -x.sin();
    Tanh "tanh" |x, a| math::tanh(x), d |x, y, a| 1.0 - y * y;
    Sigmoid "sigmoid" |x, a| math::sigmoid(x), d |x, y, a| y * (1.0 - y);
    // `x > 0 ? x : 0` keeps NaN as NaN (f32::max would drop it).
    Relu "relu" |x, a| if x > 0.0 { x } else if x.is_nan() { x } else { 0.0 }, d |x, y, a| if x > 0.0 { 1.0 } else { 0.0 };
    LeakyRelu "leakyRelu" |x, a| if x > 0.0 { x } else { a * x }, d |x, y, a| if x > 0.0 { 1.0 } else { a };
    // For x <= 0, y = a(e^x - 1), so dy/dx = a e^x = y + a.
    Elu "elu" |x, a| if x > 0.0 { x } else { a * (math::exp(x) - 1.0) }, d |x, y, a| if x > 0.0 { 1.0 } else { y + a };
    // d/dx x·Φ(x) = Φ(x) + x·φ(x).
    Gelu "gelu" |x, a| math::gelu(x),
        d |x, y, a| 0.5 * (1.0 + math::erf(x * std::f32::consts::FRAC_1_SQRT_2)) + x * 0.398_942_3 * math::exp(-0.5 * x * x);
    // log(1 + e^x) written as max(x, 0) + log1p(e^-|x|) so it neither overflows nor loses small values.
    Softplus "softplus" |x, a| x.max(0.0) + math::exp(-x.abs()).ln_1p(), d |x, y, a| math::sigmoid(x);
    // x / (1 + |x|), a cheap bounded squashing; at ±inf the quotient is inf/inf, so ±1 is picked there.
    Softsign "softsign" |x, a| if x.abs() == f32::INFINITY { x.signum() } else { x / (1.0 + x.abs()) },
        d |x, y, a| 1.0 / ((1.0 + x.abs()) * (1.0 + x.abs()));
    // x·tanh(softplus(x)) (Misra 2019); d/dx = t + x·(1 − t²)·σ(x) with t = tanh(softplus(x)).
    // At −inf the product is −inf·0: the limit, 0, is taken (for y and for dy/dx).
    Mish "mish" |x, a| if x == f32::NEG_INFINITY { -0.0 } else { x * math::tanh(x.max(0.0) + math::exp(-x.abs()).ln_1p()) },
        d |x, y, a| if x == f32::NEG_INFINITY { 0.0 } else {
            let t = math::tanh(x.max(0.0) + math::exp(-x.abs()).ln_1p());
            t + x * (1.0 - t * t) * math::sigmoid(x)
        };
}

impl UnaryOp {
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}
