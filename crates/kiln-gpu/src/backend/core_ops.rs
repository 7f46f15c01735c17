//! The core op families on the GPU: each function views its inputs as GpuTensors, runs the kernel
//! from kernels/ and wraps the result (see mod.rs).

use super::GpuBackend;
use crate::kernels::{elementwise, matmul as mm, softmax as sm};
use kiln_core::ops::{BinaryOp, ReduceOp, UnaryOp};
use kiln_core::optim::{GradTransform, Rule};
use kiln_core::{DType, Result, Tensor};

pub fn unary(b: &GpuBackend, op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
    Ok(b.wrap(elementwise::unary(b.device(), op, &b.gpu(x)?, alpha)?))
}

pub fn unary_backward(b: &GpuBackend, op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
    Ok(b.wrap(elementwise::unary_backward(b.device(), op, &b.gpu(x)?, &b.gpu(y)?, &b.gpu(g)?, alpha)?))
}

pub fn binary(b: &GpuBackend, op: BinaryOp, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(b.wrap(elementwise::binary(b.device(), op, &b.gpu(x)?, &b.gpu(y)?)?))
}

pub fn where_(b: &GpuBackend, cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(b.wrap(elementwise::where_(b.device(), &b.gpu(cond)?, &b.gpu(x)?, &b.gpu(y)?)?))
}

pub fn cast(b: &GpuBackend, x: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(b.wrap(elementwise::cast(b.device(), &b.gpu(x)?, dtype)?))
}

pub fn reduce(b: &GpuBackend, op: ReduceOp, x: &Tensor, axes: &[usize], keep_dims: bool, correction: usize) -> Result<Tensor> {
    let x = b.gpu(x)?;
    if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) && axes.len() > 1 {
        // kiln-core passes every axis when none was given: an index into the flattened tensor.
        let flat = x.reshape(b.device(), &[-1])?;
        let y = crate::kernels::reduce_more::reduce_any(b.device(), op, &flat, &[0], false, 0)?;
        let shape: Vec<isize> = if keep_dims { vec![1; x.rank()] } else { vec![] };
        return Ok(b.wrap(y.reshape(b.device(), &shape)?));
    }
    let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
    Ok(b.wrap(crate::kernels::reduce_more::reduce_any(b.device(), op, &x, &axes, keep_dims, correction)?))
}

pub fn softmax(b: &GpuBackend, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    Ok(b.wrap(sm::softmax(b.device(), &b.gpu(x)?, axis as isize, log)?))
}

pub fn softmax_backward(b: &GpuBackend, y: &Tensor, g: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    Ok(b.wrap(sm::softmax_backward(b.device(), &b.gpu(y)?, &b.gpu(g)?, axis as isize, log)?))
}

pub fn matmul(b: &GpuBackend, x: &Tensor, y: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    Ok(b.wrap(mm::matmul(b.device(), &b.gpu(x)?, &b.gpu(y)?, transpose_a, transpose_b)?))
}

/// Updates the parameter and its state in place on the device: each gets a buffer of its own
/// first (copy-on-write, as on the CPU), then one fused kernel writes them all.
pub fn optim_step(b: &GpuBackend, rule: Rule, transform: GradTransform, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor]) -> Result<()> {
    b.make_unique(param)?;
    for s in state.iter_mut() {
        b.make_unique(s)?;
    }
    let p = b.gpu(param)?;
    let s: Vec<_> = state.iter().map(|t| b.gpu(t)).collect::<Result<_>>()?;
    crate::kernels::optim::optim_in_place(b.device(), rule, transform, &p, &b.gpu(grad)?, &s)
}
