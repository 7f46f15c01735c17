//! The CPU's broadcasting binary ops and `where`: one row of params/binary.rs per op, compiled
//! into SIMD loops per instruction set (see `simd::multiversion!`). Inputs are float32 (bool
//! for `where`'s condition), checked by ops/binary.rs; any layout, read through their strides.

use crate::error::Result;
use crate::layout::{self, contiguous_strides};
use crate::multiversion;
use crate::parallel::SendPtr;
use crate::params::binary::{BinaryKernel, BinaryOp, BinaryVisitor};
use crate::storage::Element;
use crate::tensor::Tensor;

multiversion! {
    /// One innermost run: `a` and `b` start at their run's first element and step by sa / sb.
    fn zip_run<K: BinaryKernel>(a: &[f32], sa: usize, b: &[f32], sb: usize, out: &mut [K::Out]) {
        let n = out.len();
        match (sa, sb) {
            (1, 1) => for ((o, &x), &y) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) { *o = K::apply(x, y) },
            (0, 1) => { let x = a[0]; for (o, &y) in out.iter_mut().zip(&b[..n]) { *o = K::apply(x, y) } }
            (1, 0) => { let y = b[0]; for (o, &x) in out.iter_mut().zip(&a[..n]) { *o = K::apply(x, y) } }
            _ => for (i, o) in out.iter_mut().enumerate() { *o = K::apply(a[i * sa], b[i * sb]) },
        }
    }
}

/// One innermost run of one op (`zip_run::<K>`): a, its stride, b, its stride, the output run.
type Run<O> = fn(&[f32], usize, &[f32], usize, &mut [O]);

/// `op(a, b)` with NumPy broadcasting.
pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    struct Broadcast<'a> {
        name: &'static str,
        a: &'a Tensor,
        b: &'a Tensor,
    }
    impl BinaryVisitor for Broadcast<'_> {
        type Out = Result<Tensor>;
        fn visit<K: BinaryKernel>(self) -> Result<Tensor> {
            broadcast_binary::<K::Out>(self.name, self.a, self.b, zip_run::<K>)
        }
    }
    op.visit(Broadcast { name: op.name(), a, b })
}

/// The broadcasting machinery, one copy per output type; only the innermost run is per op.
/// Generic over the op, the 13 copies were inlined into `BinaryOp::visit`'s match: in the WASM
/// module one 95 KB function, and V8's optimizing tier, which compiles it as soon as training
/// makes it hot, held about 30 MB more at its peak (the bench's kiln-wasm mlp-train peak RSS row).
fn broadcast_binary<O: Element + Default>(op: &str, a: &Tensor, b: &Tensor, run: Run<O>) -> Result<Tensor> {
    // Same shape, both contiguous: one flat run, none of the broadcasting machinery (this is
    // most calls, and for small tensors the machinery would cost more than the arithmetic).
    if a.shape() == b.shape() && a.numel() < crate::parallel::MIN_PARALLEL_ELEMENTS {
        if let (Some(x), Some(y)) = (a.contiguous_slice::<f32>(), b.contiguous_slice::<f32>()) {
            let mut out = vec![O::default(); x.len()];
            run(x, 1, y, 1, &mut out);
            return Tensor::from_vec(out, a.shape());
        }
    }
    let shape = layout::broadcast_shapes(op, a.shape(), b.shape())?;
    let a_strides = layout::broadcast_strides(a.shape(), a.strides(), &shape);
    let b_strides = layout::broadcast_strides(b.shape(), b.strides(), &shape);
    let out_strides = contiguous_strides(&shape);
    let (a_raw, b_raw) = (a.cpu_raw::<f32>(op)?, b.cpu_raw::<f32>(op)?);
    let mut out: Vec<O> = crate::storage::try_zeroed(op, layout::checked_numel(op, &shape)?)?;
    let dst = SendPtr(out.as_mut_ptr());
    layout::for_each_row(&shape, [&a_strides, &b_strides, &out_strides], [a.offset(), b.offset(), 0], |([ao, bo, oo], len, [sa, sb, _])| {
        // SAFETY: each run writes its own disjoint range of `out`.
        let out_run = unsafe { std::slice::from_raw_parts_mut(dst.get().add(oo), len) };
        run(&a_raw[ao..], sa, &b_raw[bo..], sb, out_run);
    });
    Tensor::from_vec(out, &shape)
}

/// `cond ? a : b` elementwise, all three broadcast together (shapes checked by the op).
pub(crate) fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "where";
    let shape = layout::broadcast_shapes(OP, a.shape(), b.shape())?;
    let shape = layout::broadcast_shapes(OP, cond.shape(), &shape)?;
    let c_strides = layout::broadcast_strides(cond.shape(), cond.strides(), &shape);
    let a_strides = layout::broadcast_strides(a.shape(), a.strides(), &shape);
    let b_strides = layout::broadcast_strides(b.shape(), b.strides(), &shape);
    let out_strides = contiguous_strides(&shape);
    let (c_raw, a_raw, b_raw) = (cond.cpu_raw::<u8>(OP)?, a.cpu_raw::<f32>(OP)?, b.cpu_raw::<f32>(OP)?);
    let mut out = crate::storage::try_zeroed::<f32>(OP, layout::checked_numel(OP, &shape)?)?;
    let dst = SendPtr(out.as_mut_ptr());
    layout::for_each_row(
        &shape,
        [&c_strides, &a_strides, &b_strides, &out_strides],
        [cond.offset(), a.offset(), b.offset(), 0],
        |([co, ao, bo, oo], len, [sc, sa, sb, _])| {
            // SAFETY: each run writes its own disjoint range of `out`.
            let run = unsafe { std::slice::from_raw_parts_mut(dst.get().add(oo), len) };
            for (i, o) in run.iter_mut().enumerate() {
                *o = if c_raw[co + i * sc] != 0 { a_raw[ao + i * sa] } else { b_raw[bo + i * sb] };
            }
        },
    );
    Tensor::from_vec(out, &shape)
}
