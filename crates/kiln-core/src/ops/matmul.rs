//! Matrix multiplication: 2-D, batched with broadcast batch dimensions, and with either operand
//! transposed: validation, shape rules, one dispatch and the autograd record. Transposes are
//! stride swaps handed to the device (device/cpu/matmul.rs on the CPU), so backward passes never
//! copy.

use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout;
use crate::tensor::Tensor;

/// `a @ b`. a: [...batchA, M, K] (or [K]), b: [...batchB, K, N] (or [K]) -> [...batch, M, N],
/// where batch is batchA and batchB broadcast. `transpose_a` / `transpose_b` use the operand's
/// last two dimensions swapped (a view, no copy).
pub fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    let tracked = a.requires_grad() || b.requires_grad();
    if tracked && (a.rank() == 1 || b.rank() == 1) && a.rank() > 0 && b.rank() > 0 {
        // Vectors: promote with recorded views, so only the matrix gradient rules are needed.
        let a2 = if a.rank() == 1 { a.unsqueeze(0)? } else { a.clone() };
        let b2 = if b.rank() == 1 { b.unsqueeze(1)? } else { b.clone() };
        let out = matmul(&a2, &b2, transpose_a && a.rank() > 1, transpose_b && b.rank() > 1)?;
        let out = if a.rank() == 1 { out.squeeze(&[-2])? } else { out };
        return if b.rank() == 1 { out.squeeze(&[-1]) } else { Ok(out) };
    }
    let out = matmul_forward(a, b, transpose_a, transpose_b)?;
    if !tracked {
        return Ok(out);
    }
    Ok(crate::autograd::record("matmul", &[a, b], &[a, b], out, move |g, saved, needs| {
        let (a, b) = (&saved[0], &saved[1]);
        let mm = matmul_forward;
        // C = op(A) op(B); each case is the transpose-aware form of dA = dC Bᵀ, dB = Aᵀ dC, so
        // no operand is ever copied to transpose it. A gradient no input needs (the data
        // batch of a first layer) is not computed: that GEMM is a third of a layer's backward.
        let ga = match (needs[0], transpose_a, transpose_b) {
            (false, _, _) => None,
            (true, false, false) => Some(mm(g, b, false, true)?),
            (true, false, true) => Some(mm(g, b, false, false)?),
            (true, true, false) => Some(mm(b, g, false, true)?),
            (true, true, true) => Some(mm(b, g, true, true)?),
        };
        let gb = match (needs[1], transpose_a, transpose_b) {
            (false, _, _) => None,
            (true, false, false) => Some(mm(a, g, true, false)?),
            (true, false, true) => Some(mm(g, a, true, false)?),
            (true, true, false) => Some(mm(a, g, false, false)?),
            (true, true, true) => Some(mm(g, a, true, true)?),
        };
        Ok(vec![
            ga.map(|t| crate::autograd::sum_to_shape(&t, a.shape())).transpose()?,
            gb.map(|t| crate::autograd::sum_to_shape(&t, b.shape())).transpose()?,
        ])
    }))
}

fn matmul_forward(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    const OP: &str = "matmul";
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return Err(KilnError::new(OP, format!(
            "expected float32 tensors, got {} {} and {} {}",
            a.dtype(), fmt_shape(a.shape()), b.dtype(), fmt_shape(b.shape())
        )));
    }
    if a.rank() == 0 || b.rank() == 0 {
        return Err(KilnError::new(OP, format!(
            "operands must have rank >= 1, got shapes {} and {}", fmt_shape(a.shape()), fmt_shape(b.shape())
        )));
    }
    // NumPy's rule for vectors: promote to a matrix, then drop that dimension from the result.
    let a_vec = a.rank() == 1;
    let b_vec = b.rank() == 1;
    let a2 = if a_vec { a.unsqueeze(0)? } else if transpose_a { a.transpose(-1, -2)? } else { a.clone() };
    let b2 = if b_vec { b.unsqueeze(1)? } else if transpose_b { b.transpose(-1, -2)? } else { b.clone() };

    let (m, k) = (a2.shape()[a2.rank() - 2], a2.shape()[a2.rank() - 1]);
    let (k2, n) = (b2.shape()[b2.rank() - 2], b2.shape()[b2.rank() - 1]);
    if k != k2 {
        return Err(KilnError::new(OP, format!(
            "inner dimensions differ: {} (transposeA={transpose_a}) x {} (transposeB={transpose_b}) gives K={k} vs K={k2}",
            fmt_shape(a.shape()), fmt_shape(b.shape())
        )));
    }
    let a_batch = &a2.shape()[..a2.rank() - 2];
    let b_batch = &b2.shape()[..b2.rank() - 2];
    let batch = layout::broadcast_shapes(OP, a_batch, b_batch).map_err(|_| {
        KilnError::new(OP, format!(
            "batch dimensions of {} and {} cannot be broadcast together ({} vs {})",
            fmt_shape(a.shape()), fmt_shape(b.shape()), fmt_shape(a_batch), fmt_shape(b_batch)
        ))
    })?;
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    // The device gets the operands as views (transposes and vector promotion done above).
    let y = crate::device::dispatch(OP, &[a, b])?.matmul(&a2, &b2, false, false)?;
    if !(a_vec || b_vec) {
        return Ok(y);
    }
    if a_vec {
        out_shape.remove(out_shape.len() - 2);
    }
    if b_vec {
        out_shape.pop();
    }
    let dims: Vec<isize> = out_shape.iter().map(|&d| d as isize).collect();
    y.reshape(&dims)
}
