//! The CPU's linear layer, y = x·Wᵀ + bias: every row of the output starts as the bias and the
//! GEMM accumulates the product onto it, so the bias costs no pass of its own (matmul then add
//! was a second read and write of the whole output, and an allocation). x's leading dims are
//! stacked into the GEMM's rows. Wᵀ is laid out row-major once per weight and kept with it
//! (`Tensor::derived`, dropped when the weight is written in place, as by an optimizer step): the
//! `gemm` crate reads a transposed view column by column, K floats apart, and at K = 1024 (4 KiB
//! apart: every column in the same L1 sets) that ran at 60 GFLOP/s on one thread against 131 on
//! the row-major copy (examples/transformer_gemms.rs, loaded machine). Arguments are checked by
//! ops/linear.rs.

use super::gemm_call::{gemm, Parallelism};
use super::matmul::MIN_PARALLEL_FLOPS;
use crate::error::Result;
use crate::tensor::Tensor;
use std::sync::Arc;

const OP: &str = "linear";

/// Wᵀ [K, N], row-major: the form of a weight the GEMM reads.
struct TransposedWeight(Vec<f32>);

/// W's transpose, made on the first call for this view of W's buffer and kept with it.
fn transposed(w: &Tensor) -> Result<Arc<TransposedWeight>> {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let (src, offset, rs, cs) = (w.cpu_raw::<f32>(OP)?, w.offset(), w.strides()[0], w.strides()[1]);
    w.derived(&[], || {
        let mut t = crate::alloc::try_with_capacity::<f32>(OP, k * n)?;
        for p in 0..k {
            t.extend((0..n).map(|j| src[offset + j * rs + p * cs]));
        }
        Ok((TransposedWeight(t), k * n * std::mem::size_of::<f32>()))
    })
}

/// x [..., K] · Wᵀ + bias -> [..., N].
pub(crate) fn forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let lead = &x.shape()[..x.rank() - 1];
    let rows: usize = lead.iter().product();
    let len = crate::layout::checked_numel(OP, &[rows, n])?;
    let mut out = match bias {
        Some(b) => {
            let b = b.elements::<f32>(OP)?;
            let mut out = crate::alloc::try_with_capacity::<f32>(OP, len)?;
            (0..rows).for_each(|_| out.extend_from_slice(&b));
            out
        }
        None => crate::storage::try_zeroed::<f32>(OP, len)?,
    };
    if rows > 0 && n > 0 && k > 0 {
        let xs = x.materialize()?;
        let x_data = xs.cpu_slice::<f32>(OP)?;
        // A transposed view of a row-major [K, N] matrix (an imported MatMul's weight) is Wᵀ
        // row-major already; any other layout is copied once.
        let (copy, raw) = if w.strides() == [1, n] { (None, &w.cpu_raw::<f32>(OP)?[w.offset()..]) } else { (Some(transposed(w)?), &[][..]) };
        let wt = copy.as_ref().map_or(raw, |c| &c.0[..]);
        let parallelism = if rows * n * k >= MIN_PARALLEL_FLOPS { Parallelism::Threads } else { Parallelism::None };
        assert!(wt.len() >= k * n, "linear: weight view out of bounds");
        // SAFETY: x is contiguous [rows, k], wt holds [k, n] row-major; out holds rows·n floats
        // and overlaps neither.
        unsafe {
            gemm(
                rows, n, k,
                out.as_mut_ptr(), n as isize, 1, bias.is_some(),
                x_data.as_ptr(), k as isize, 1,
                wt.as_ptr(), n as isize, 1,
                parallelism,
            );
        }
    }
    let mut shape = lead.to_vec();
    shape.push(n);
    Tensor::from_vec(out, &shape)
}
