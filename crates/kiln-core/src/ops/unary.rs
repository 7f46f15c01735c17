//! Elementwise unary ops: one table row per op gives its name and its scalar formula. The
//! formula is compiled into a SIMD loop per instruction set (see `simd::multiversion!`).

use crate::error::Result;
use crate::math;
use crate::multiversion;
use crate::parallel;
use crate::tensor::Tensor;
use crate::dtype::DType;

pub trait UnaryKernel {
    fn apply(x: f32, alpha: f32) -> f32;
}

multiversion! {
    fn map_slice<K: UnaryKernel>(x: &[f32], out: &mut [f32], alpha: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = K::apply(v, alpha);
        }
    }
}

macro_rules! unary_ops {
    ($($variant:ident $name:literal |$x:ident, $alpha:ident| $body:expr;)*) => {
        /// The unary ops. `alpha` is the slope of leakyRelu and the scale of elu; others ignore it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum UnaryOp { $($variant),* }

        impl UnaryOp {
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(UnaryOp::$variant => $name),* }
            }

            fn map(self, x: &[f32], out: &mut [f32], alpha: f32) {
                match self {
                    $(UnaryOp::$variant => {
                        struct K;
                        impl UnaryKernel for K {
                            #[inline(always)]
                            #[allow(unused_variables)]
                            fn apply($x: f32, $alpha: f32) -> f32 { $body }
                        }
                        map_slice::<K>(x, out, alpha)
                    })*
                }
            }
        }
    };
}

unary_ops! {
    Neg "neg" |x, a| -x;
    Abs "abs" |x, a| x.abs();
    Exp "exp" |x, a| math::exp(x);
    Log "log" |x, a| x.ln();
    Sqrt "sqrt" |x, a| x.sqrt();
    Rsqrt "rsqrt" |x, a| 1.0 / x.sqrt();
    Square "square" |x, a| x * x;
    Sin "sin" |x, a| x.sin();
    Cos "cos" |x, a| x.cos();
    Tanh "tanh" |x, a| math::tanh(x);
    Sigmoid "sigmoid" |x, a| math::sigmoid(x);
    // `x > 0 ? x : 0` keeps NaN as NaN (f32::max would drop it).
    Relu "relu" |x, a| if x > 0.0 { x } else if x.is_nan() { x } else { 0.0 };
    LeakyRelu "leakyRelu" |x, a| if x > 0.0 { x } else { a * x };
    Elu "elu" |x, a| if x > 0.0 { x } else { a * (math::exp(x) - 1.0) };
    Gelu "gelu" |x, a| math::gelu(x);
    // log(1 + e^x) written as max(x, 0) + log1p(e^-|x|) so it neither overflows nor loses small values.
    Softplus "softplus" |x, a| x.max(0.0) + math::exp(-x.abs()).ln_1p();
}

impl UnaryOp {
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// Applies `op` elementwise: any shape -> the same shape, float32 only.
pub fn unary(op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
    x.expect_dtype(op.name(), DType::F32)?;
    let x = x.contiguous()?;
    let input = x.contiguous_slice::<f32>().expect("contiguous f32");
    let mut out = crate::storage::try_zeroed::<f32>(op.name(), input.len())?;
    parallel::zip_chunks(input, &mut out, 1, |src, dst| op.map(src, dst, alpha));
    Tensor::from_vec(out, x.shape())
}
