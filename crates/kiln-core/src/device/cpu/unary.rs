//! The unary ops on the CPU: each row of params/unary.rs compiled into SIMD loops per
//! instruction set (see `simd::multiversion!`); backward is one fused pass, g * dy/dx.

use crate::error::Result;
use crate::multiversion;
use crate::parallel;
use crate::params::unary::{UnaryKernel, UnaryOp, UnaryVisitor};
use crate::tensor::Tensor;

multiversion! {
    fn map_slice<K: UnaryKernel>(x: &[f32], out: &mut [f32], alpha: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = K::apply(v, alpha);
        }
    }
}

multiversion! {
    fn map_in_place<K: UnaryKernel>(data: &mut [f32], alpha: f32) {
        for v in data.iter_mut() {
            *v = K::apply(*v, alpha);
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

/// Whether `op` is GELU on an AVX-512 CPU, whose forward runs gelu_avx512.rs's loop (FMAs and no
/// division, about twice the portable loop's speed); every other op runs the generic loops.
#[cfg(target_arch = "x86_64")]
fn gelu_on_avx512(op: UnaryOp) -> bool {
    op == UnaryOp::Gelu && crate::simd::level() == crate::simd::SimdLevel::Avx512
}

/// Forward (`grad` None) or backward (`grad` = (y, g)) of `op` over contiguous slices.
fn run(op: UnaryOp, x: &[f32], grad: Option<(&[f32], &[f32])>, out: &mut [f32], alpha: f32) {
    #[cfg(target_arch = "x86_64")]
    if grad.is_none() && gelu_on_avx512(op) {
        // SAFETY: the CPU runs AVX-512 (gelu_on_avx512).
        return unsafe { super::gelu_avx512::gelu(x, out) };
    }
    struct Pass<'a> {
        x: &'a [f32],
        grad: Option<(&'a [f32], &'a [f32])>,
        out: &'a mut [f32],
        alpha: f32,
    }
    impl UnaryVisitor for Pass<'_> {
        type Out = ();
        fn visit<K: UnaryKernel>(self) {
            match self.grad {
                None => map_slice::<K>(self.x, self.out, self.alpha),
                Some((y, g)) => backward_slice::<K>(self.x, y, g, self.out, self.alpha),
            }
        }
    }
    op.visit(Pass { x, grad, out, alpha })
}

/// data = op(data), on the calling thread: for a kernel's epilogue on a block it just wrote
/// (conv/epilogue.rs), where the block is still in cache.
pub(crate) fn apply_in_place(op: UnaryOp, data: &mut [f32], alpha: f32) {
    #[cfg(target_arch = "x86_64")]
    if gelu_on_avx512(op) {
        // SAFETY: as in `run`.
        return unsafe { super::gelu_avx512::gelu_in_place(data) };
    }
    struct InPlace<'a>(&'a mut [f32], f32);
    impl UnaryVisitor for InPlace<'_> {
        type Out = ();
        fn visit<K: UnaryKernel>(self) {
            map_in_place::<K>(self.0, self.1)
        }
    }
    op.visit(InPlace(data, alpha))
}

/// y = op(x) for a contiguous float32 x.
pub(crate) fn forward(op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
    let input = x.cpu_slice::<f32>(op.name())?;
    // SAFETY: `run` maps every element of each chunk, and the chunks cover `out` (no zeroing
    // first: it was a tenth of cnn-train's memset time).
    let out = unsafe { crate::alloc::try_filled_by::<f32>(op.name(), input.len(), |out| parallel::zip_chunks(input, out, 1, |src, dst| run(op, src, None, dst, alpha)))? };
    Tensor::from_vec(out, x.shape())
}

/// g * dy/dx for y = op(x), in one pass. x, y contiguous; g any layout.
pub(crate) fn backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
    let gc = g.materialize()?;
    let (xs, ys, gs) = (x.cpu_slice::<f32>(op.name())?, y.cpu_slice::<f32>(op.name())?, gc.cpu_slice::<f32>(op.name())?);
    // Chunked by offset so all four slices stay aligned.
    let chunk = xs.len().div_ceil(parallel::chunk_count(xs.len())).max(1);
    // SAFETY: the chunks cover `out` and `run` writes every element of each (no zeroing first).
    let out = unsafe {
        crate::alloc::try_written::<f32>(op.name(), xs.len(), |ptr| {
            let dst = parallel::SendPtr(ptr);
            parallel::for_each_chunk(xs.len().div_ceil(chunk), xs.len().div_ceil(chunk), |c, _| {
                let (s, e) = (c * chunk, ((c + 1) * chunk).min(xs.len()));
                // SAFETY: chunks are disjoint ranges of `out`.
                let o = std::slice::from_raw_parts_mut(dst.get().add(s), e - s);
                run(op, &xs[s..e], Some((&ys[s..e], &gs[s..e])), o, alpha);
            });
            Ok(())
        })?
    };
    Tensor::from_vec(out, x.shape())
}
