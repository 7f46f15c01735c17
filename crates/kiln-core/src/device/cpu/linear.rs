//! The CPU's linear layer, y = x·Wᵀ + bias (+ residual): every row of the output starts as the
//! bias (plus that row of the residual) and the GEMM accumulates the product onto it, so neither
//! costs a pass of its own (matmul then add was a second read and write of the whole output, and
//! an allocation; an imported Transformer's residual Add a third). On the packed path below the
//! GEMM's stores add them (`gemm_packed_plus`), so no pass writes the output before the product.
//! x's leading dims are
//! stacked into the GEMM's rows; W is read through its strides (its transpose is a view).
//! Under inference (no autograd record: `noGrad`, as the ONNX runner and `predict` run), Kiln's
//! AVX-512 GEMM reads W packed once into its panel layout and kept with the tensor
//! (`Tensor::derived`, dropped by any in-place write such as an optimizer step), as onnxruntime
//! prepacks its initializers: a batch-1 product otherwise transposes the whole weight on every
//! call. Training never packs, so a trained model's parameters take no extra memory; an
//! evaluation pass holds one packed copy per weight until the next optimizer step. An activation
//! (ops::linear_activated, under inference: an imported Transformer's Linear + GELU) is applied
//! to each block of the packed product by the thread that computed it, right after, while the
//! block is in its cache: no pass, allocation or boundary call of its own. Arguments are checked
//! by ops/linear.rs.

use super::gemm_call::{gemm, Parallelism};
use crate::error::Result;
use crate::parallel::{self, SendPtr, MIN_PARALLEL_FLOPS};
use crate::params::conv::Activation;
use crate::tensor::Tensor;
use std::ops::Range;

const OP: &str = "linear";
/// The `Tensor::derived` tag of a weight packed for Kiln's AVX-512 GEMM.
#[cfg(target_arch = "x86_64")]
const PACKED_TAG: usize = 0x6c696e; // "lin"

/// activation(x [..., K] · Wᵀ + bias + residual) -> [..., N] (residual [..., N]).
pub(crate) fn forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>, activation: Option<Activation>) -> Result<Tensor> {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let lead = &x.shape()[..x.rank() - 1];
    let rows: usize = lead.iter().product();
    let len = crate::layout::checked_numel(OP, &[rows, n])?;
    let bias = bias.map(|b| b.elements::<f32>(OP)).transpose()?;
    let residual = residual.map(|r| r.materialize()).transpose()?;
    let start = Start { n, bias: bias.as_deref(), residual: residual.as_ref().map(|r| r.cpu_slice::<f32>(OP)).transpose()? };
    if rows == 0 || n == 0 || k == 0 {
        let mut out = start.whole(len)?;
        activate(&mut out, n, activation);
        return finish(out, lead, n);
    }
    let xs = x.materialize()?;
    let x_data = xs.cpu_slice::<f32>(OP)?;
    let w_data = w.cpu_raw::<f32>(OP)?;
    let (w_rs, w_cs) = (w.strides()[0] as isize, w.strides()[1] as isize);
    let parallelism = if rows * n * k >= MIN_PARALLEL_FLOPS { Parallelism::Threads } else { Parallelism::None };
    #[cfg(target_arch = "x86_64")]
    let threads = if parallelism == Parallelism::Threads { crate::parallel::num_threads() } else { 1 };
    #[cfg(target_arch = "x86_64")]
    if !crate::autograd::is_enabled() && super::gemm_avx512::chooses(rows, n, k, super::gemm_avx512::BForm::Packed, threads) {
        use super::gemm_avx512::{gemm_packed_plus, Addend, FinishBlock, MatRef, PackedB};
        // Wᵀ [k, n] is W's view with its strides swapped.
        let wt = MatRef { ptr: w_data.as_ptr().wrapping_add(w.offset()), rs: w_cs, cs: w_rs };
        // SAFETY: the view's elements are inside W's buffer (checked by the op); the CPU runs
        // AVX-512 (chooses).
        let packed = w.derived(&[PACKED_TAG], || {
            let p = unsafe { PackedB::new(k, n, wt) };
            let bytes = p.bytes();
            Ok((p, bytes))
        })?;
        let xr = MatRef { ptr: x_data.as_ptr(), rs: k as isize, cs: 1 };
        // The bias is n floats, the residual [rows, n] (checked by the op).
        let addend = Addend { row: start.bias.map(|b| b.as_ptr()), matrix: start.residual.map(|r| (r.as_ptr(), n)) };
        // SAFETY: x is contiguous [rows, k]; out holds rows·n floats, all written by the product,
        // and overlaps neither x, W's packed copy, the bias nor the residual.
        let out = unsafe {
            crate::alloc::try_written::<f32>(OP, len, |out| {
                let out = SendPtr(out);
                let act = |r: Range<usize>, c: Range<usize>| activate_block(out.ptr(), n, r, c, activation);
                let then = activation.map(|_| &act as FinishBlock);
                gemm_packed_plus(rows, out.ptr(), n, addend, then, xr, &packed, 1.0, threads);
                Ok(())
            })?
        };
        return finish(out, lead, n);
    }
    let mut out = start.whole(len)?;
    // SAFETY: x is contiguous [rows, k]; Wᵀ's element (p, j) is W's (j, p), inside its
    // buffer for p < k, j < n; out holds rows·n floats and overlaps neither.
    unsafe {
        gemm(
            rows, n, k,
            out.as_mut_ptr(), n as isize, 1, !start.is_zero(),
            x_data.as_ptr(), k as isize, 1,
            w_data.as_ptr().add(w.offset()), w_cs, w_rs,
            parallelism,
        );
    }
    activate(&mut out, n, activation);
    finish(out, lead, n)
}

/// `activation` over the whole output (rows of n), in row ranges on the pool's threads when large.
fn activate(out: &mut [f32], n: usize, activation: Option<Activation>) {
    if activation.is_none() || out.is_empty() || n == 0 {
        return;
    }
    let rows = out.len() / n;
    let ptr = SendPtr(out.as_mut_ptr());
    // SAFETY: the row ranges are disjoint and inside out.
    parallel::for_each_chunk(rows, parallel::chunk_count(out.len()), |r0, r1| unsafe { activate_block(ptr.ptr(), n, r0..r1, 0..n, activation) });
}

/// `activation` over block (rows, cols) of `out` (rows n floats apart), in place.
///
/// # Safety
/// `out` must be valid for reads and writes of the block, and no other thread may touch it.
unsafe fn activate_block(out: *mut f32, n: usize, rows: Range<usize>, cols: Range<usize>, activation: Option<Activation>) {
    let Some(activation) = activation else { return };
    for r in rows {
        let row = std::slice::from_raw_parts_mut(out.add(r * n + cols.start), cols.len());
        super::unary::apply_in_place(activation.op, row, activation.alpha);
    }
}

/// The output's starting value, in rows of n: the bias in every row, plus the residual's row
/// when there is one (zeros when neither is given).
struct Start<'a> {
    n: usize,
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
}

impl Start<'_> {
    fn is_zero(&self) -> bool {
        self.bias.is_none() && self.residual.is_none()
    }

    /// All `len` floats of it.
    fn whole(&self, len: usize) -> Result<Vec<f32>> {
        if self.is_zero() {
            return crate::storage::try_zeroed::<f32>(OP, len);
        }
        // SAFETY: every row of n floats is written (the residual, if any, holds len floats; n > 0
        // when len > 0).
        unsafe {
            crate::alloc::try_filled_by::<f32>(OP, len, |out| {
                for (r, dst) in out.chunks_mut(self.n).enumerate() {
                    let row = r * self.n..(r + 1) * self.n;
                    match (self.bias, self.residual) {
                        (Some(b), Some(res)) => dst.iter_mut().zip(&res[row]).zip(b).for_each(|((d, r), b)| *d = r + b),
                        (Some(b), None) => dst.copy_from_slice(b),
                        (None, Some(res)) => dst.copy_from_slice(&res[row]),
                        (None, None) => dst.fill(0.0),
                    }
                }
            })
        }
    }
}

/// The output [..lead, n] from its rows.
fn finish(out: Vec<f32>, lead: &[usize], n: usize) -> Result<Tensor> {
    let mut shape = lead.to_vec();
    shape.push(n);
    Tensor::from_vec(out, &shape)
}
