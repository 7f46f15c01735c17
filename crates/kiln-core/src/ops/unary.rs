//! Elementwise unary ops: one table row per op gives its name, its scalar formula and its
//! derivative (as a function of the input x, the output y and alpha). Both are compiled into SIMD
//! loops per instruction set (see `simd::multiversion!`); backward is one fused pass, g * dy/dx.

use crate::autograd;
use crate::device;
use crate::error::Result;
use crate::math;
use crate::multiversion;
use crate::parallel;
use crate::tensor::Tensor;
use crate::dtype::DType;

pub trait UnaryKernel {
    fn apply(x: f32, alpha: f32) -> f32;
    fn derivative(x: f32, y: f32, alpha: f32) -> f32;
}

multiversion! {
    fn map_slice<K: UnaryKernel>(x: &[f32], out: &mut [f32], alpha: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = K::apply(v, alpha);
        }
    }
}

multiversion! {
    fn backward_slice<K: UnaryKernel>(x: &[f32], y: &[f32], g: &[f32], out: &mut [f32], alpha: f32) {
        for (((o, &xv), &yv), &gv) in out.iter_mut().zip(x).zip(y).zip(g) {
            *o = gv * K::derivative(xv, yv, alpha);
        }
    }
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

            /// Forward (`grad` None) or backward (`grad` = (y, g)) over contiguous slices.
            fn run(self, x: &[f32], grad: Option<(&[f32], &[f32])>, out: &mut [f32], alpha: f32) {
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
                        match grad {
                            None => map_slice::<K>(x, out, alpha),
                            Some((y, g)) => backward_slice::<K>(x, y, g, out, alpha),
                        }
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
}

impl UnaryOp {
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// Applies `op` elementwise: any shape -> the same shape, float32 only.
pub fn unary(op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
    x.expect_dtype(op.name(), DType::F32)?;
    let xc = x.materialize()?;
    let y = match device::device_of(op.name(), &[x])? {
        Some(dev) => dev.unary(op, &xc, alpha)?,
        None => {
            let input = xc.contiguous_slice::<f32>().expect("contiguous f32");
            let mut out = crate::storage::try_zeroed::<f32>(op.name(), input.len())?;
            parallel::zip_chunks(input, &mut out, 1, |src, dst| op.run(src, None, dst, alpha));
            Tensor::from_vec(out, x.shape())?
        }
    };
    if !x.requires_grad() {
        return Ok(y);
    }
    let saved_y = y.clone();
    Ok(autograd::record(op.name(), &[x], &[&xc, &saved_y], y, move |g, saved, _needs| {
        Ok(vec![Some(unary_backward(op, &saved[0], &saved[1], g, alpha)?)])
    }))
}

/// g * dy/dx for y = op(x), in one pass. x, y contiguous; g any layout.
fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
    if let Some(dev) = device::device_of(op.name(), &[x, y, g])? {
        return dev.unary_backward(op, x, y, g, alpha);
    }
    let gc = g.materialize()?;
    let (xs, ys, gs) = (x.contiguous_slice::<f32>().unwrap(), y.contiguous_slice::<f32>().unwrap(), gc.contiguous_slice::<f32>().unwrap());
    let mut out = crate::storage::try_zeroed::<f32>(op.name(), xs.len())?;
    // Chunked by offset so all four slices stay aligned.
    let chunk = xs.len().div_ceil(parallel::chunk_count(xs.len())).max(1);
    let dst = parallel::SendPtr(out.as_mut_ptr());
    parallel::for_each_chunk(xs.len().div_ceil(chunk), xs.len().div_ceil(chunk), |c, _| {
        let (s, e) = (c * chunk, ((c + 1) * chunk).min(xs.len()));
        // SAFETY: chunks are disjoint ranges of `out`.
        let o = unsafe { std::slice::from_raw_parts_mut(dst.get().add(s), e - s) };
        op.run(&xs[s..e], Some((&ys[s..e], &gs[s..e])), o, alpha);
    });
    Tensor::from_vec(out, x.shape())
}
