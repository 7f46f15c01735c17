//! The CPU's linear layer, y = x·Wᵀ + bias: every row of the output starts as the bias and the
//! GEMM accumulates the product onto it, so the bias costs no pass of its own (matmul then add
//! was a second read and write of the whole output, and an allocation). x's leading dims are
//! stacked into the GEMM's rows; W is read through its strides (its transpose is a view). A
//! row-major copy of Wᵀ kept with the weight (`Tensor::derived`) ran the K = 1024 product faster
//! (the `gemm` crate reads the view column by column, 4 KiB apart: 60 against 131 GFLOP/s on one
//! thread, examples/transformer_gemms.rs) but doubled every Linear weight's memory; packing the
//! weight once in the GEMM's own layout, in its place, is the next step. Arguments are checked by
//! ops/linear.rs.

use super::gemm_call::{gemm, Parallelism};
use super::matmul::MIN_PARALLEL_FLOPS;
use crate::error::Result;
use crate::tensor::Tensor;

const OP: &str = "linear";

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
        let w_data = w.cpu_raw::<f32>(OP)?;
        let (w_rs, w_cs) = (w.strides()[0] as isize, w.strides()[1] as isize);
        let parallelism = if rows * n * k >= MIN_PARALLEL_FLOPS { Parallelism::Threads } else { Parallelism::None };
        // SAFETY: x is contiguous [rows, k]; Wᵀ's element (p, j) is W's (j, p), inside its
        // buffer for p < k, j < n; out holds rows·n floats and overlaps neither.
        unsafe {
            gemm(
                rows, n, k,
                out.as_mut_ptr(), n as isize, 1, bias.is_some(),
                x_data.as_ptr(), k as isize, 1,
                w_data.as_ptr().add(w.offset()), w_cs, w_rs,
                parallelism,
            );
        }
    }
    let mut shape = lead.to_vec();
    shape.push(n);
    Tensor::from_vec(out, &shape)
}
