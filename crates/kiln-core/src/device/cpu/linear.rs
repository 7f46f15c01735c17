//! The CPU's linear layer, y = x·Wᵀ + bias (+ residual): every row of the output starts as the
//! bias (plus that row of the residual) and the GEMM accumulates the product onto it, so neither
//! costs a pass of its own (matmul then add was a second read and write of the whole output, and
//! an allocation; an imported Transformer's residual Add a third). x's leading dims are
//! stacked into the GEMM's rows; W is read through its strides (its transpose is a view).
//! Under inference (no autograd record: `noGrad`, as the ONNX runner and `predict` run), Kiln's
//! AVX-512 GEMM reads W packed once into its panel layout and kept with the tensor
//! (`Tensor::derived`, dropped by any in-place write such as an optimizer step), as onnxruntime
//! prepacks its initializers: a batch-1 product otherwise transposes the whole weight on every
//! call. Training never packs, so a trained model's parameters take no extra memory; an
//! evaluation pass holds one packed copy per weight until the next optimizer step. Arguments are
//! checked by ops/linear.rs.

use super::gemm_call::{gemm, Parallelism};
use crate::parallel::MIN_PARALLEL_FLOPS;
use crate::error::Result;
use crate::tensor::Tensor;

const OP: &str = "linear";
/// The `Tensor::derived` tag of a weight packed for Kiln's AVX-512 GEMM.
#[cfg(target_arch = "x86_64")]
const PACKED_TAG: usize = 0x6c696e; // "lin"

/// x [..., K] · Wᵀ + bias + residual -> [..., N] (residual [..., N]).
pub(crate) fn forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let lead = &x.shape()[..x.rank() - 1];
    let rows: usize = lead.iter().product();
    let len = crate::layout::checked_numel(OP, &[rows, n])?;
    let mut out = starting_value(len, n, bias, residual)?;
    // Accumulate onto the starting value unless it is all zeros.
    let accumulate = bias.is_some() || residual.is_some();
    if rows > 0 && n > 0 && k > 0 {
        let xs = x.materialize()?;
        let x_data = xs.cpu_slice::<f32>(OP)?;
        let w_data = w.cpu_raw::<f32>(OP)?;
        let (w_rs, w_cs) = (w.strides()[0] as isize, w.strides()[1] as isize);
        let parallelism = if rows * n * k >= MIN_PARALLEL_FLOPS { Parallelism::Threads } else { Parallelism::None };
        #[cfg(target_arch = "x86_64")]
        let threads = if parallelism == Parallelism::Threads { crate::parallel::num_threads() } else { 1 };
        #[cfg(target_arch = "x86_64")]
        if !crate::autograd::is_enabled() && super::gemm_avx512::chooses(rows, n, k, super::gemm_avx512::BForm::Packed, threads) {
            use super::gemm_avx512::{gemm_packed, MatRef, PackedB};
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
            // SAFETY: x is contiguous [rows, k]; out holds rows·n floats, initialized (the bias
            // or zeros) when accumulating, and overlaps neither.
            unsafe { gemm_packed(rows, out.as_mut_ptr(), n, accumulate, xr, &packed, 1.0, threads) };
            return finish(out, lead, n);
        }
        // SAFETY: x is contiguous [rows, k]; Wᵀ's element (p, j) is W's (j, p), inside its
        // buffer for p < k, j < n; out holds rows·n floats and overlaps neither.
        unsafe {
            gemm(
                rows, n, k,
                out.as_mut_ptr(), n as isize, 1, accumulate,
                x_data.as_ptr(), k as isize, 1,
                w_data.as_ptr().add(w.offset()), w_cs, w_rs,
                parallelism,
            );
        }
    }
    finish(out, lead, n)
}

/// The output's starting value, `len` floats in rows of n: the bias in every row, plus the
/// residual's row when there is one (zeros when neither is given).
fn starting_value(len: usize, n: usize, bias: Option<&Tensor>, residual: Option<&Tensor>) -> Result<Vec<f32>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let Some(r) = residual else {
        return match bias {
            Some(b) => {
                let b = b.elements::<f32>(OP)?;
                let mut out = crate::alloc::try_with_capacity::<f32>(OP, len)?;
                (0..len / n.max(1)).for_each(|_| out.extend_from_slice(&b));
                Ok(out)
            }
            None => crate::storage::try_zeroed::<f32>(OP, len),
        };
    };
    let r = r.materialize()?;
    let r = r.cpu_slice::<f32>(OP)?;
    let mut out = crate::alloc::try_with_capacity::<f32>(OP, len)?;
    match bias {
        Some(b) => {
            let b = b.elements::<f32>(OP)?;
            for row in r.chunks_exact(n) {
                out.extend(row.iter().zip(b.iter()).map(|(r, b)| r + b));
            }
        }
        None => out.extend_from_slice(r),
    }
    Ok(out)
}

/// The output [..lead, n] from its rows.
fn finish(out: Vec<f32>, lead: &[usize], n: usize) -> Result<Tensor> {
    let mut shape = lead.to_vec();
    shape.push(n);
    Tensor::from_vec(out, &shape)
}
