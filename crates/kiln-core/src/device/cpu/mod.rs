//! The CPU as a device: `Cpu` implements the same `Device` trait as kiln-gpu's GPU, and its
//! kernels live here: SIMD loops (see `simd::multiversion!`) parallel over rayon on native and
//! over Kiln's worker pool on threaded WASM. An op validates, shapes and records autograd, then
//! makes one call on `device::dispatch(..)`, which is this device for CPU tensors. A kernel
//! file here knows slices and parameter structs (params/), never the ops.
//!
//! Families not moved here yet (binary, matmul, shape, graph, loss,
//! batch norm, attention, recurrent, optimizers, quantized layers) still run their CPU code inline in
//! their op files after a `device_of` check; their trait methods here report `no_kernel`, and
//! the ops never call them for CPU tensors.

pub mod gemm_call;
#[cfg(target_arch = "wasm32")]
pub mod gemm_simd128;

pub(crate) mod attention;
pub(crate) mod conv;
pub(crate) mod pool;
pub(crate) mod quant;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub(crate) mod softmax;
pub(crate) mod unary;

use super::Device;
use crate::error::Result;
use crate::params::conv::{Activation, Geometry};
use crate::params::pool::Plan;
use crate::params::reduce::ReduceOp;
use crate::params::unary::UnaryOp;
use crate::tensor::Tensor;
use std::sync::{Arc, OnceLock};

/// The CPU device. CPU tensors hold host buffers (not a `Buffer::Device`), so `Tensor::device()`
/// stays None for them; `device::dispatch` answers this device instead.
pub struct Cpu;

/// The one CPU device (an Arc, like every device, so backward closures can keep it).
pub fn device() -> Arc<dyn Device> {
    static CPU: OnceLock<Arc<dyn Device>> = OnceLock::new();
    CPU.get_or_init(|| Arc::new(Cpu)).clone()
}

impl Device for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }
    fn describe(&self) -> String {
        format!("{{\"name\":\"cpu\",\"threads\":{},\"simd\":\"{}\"}}", crate::parallel::num_threads(), crate::simd::level_name())
    }
    // CPU tensors are already on the host: moving one here or back is a contiguous copy at most.
    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        t.materialize()
    }
    fn download(&self, t: &Tensor) -> Result<Tensor> {
        t.materialize()
    }
    fn copy(&self, t: &Tensor) -> Result<Tensor> {
        t.materialize()
    }
    fn readbacks(&self) -> u64 {
        0
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn unary(&self, op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
        unary::forward(op, x, alpha)
    }
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
        unary::backward(op, x, y, g, alpha)
    }

    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keep_dims: bool, correction: usize) -> Result<Tensor> {
        reduce::forward(op, x, axes, keep_dims, correction)
    }
    fn softmax(&self, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        softmax::forward(x, axis, log)
    }

    fn conv2d_forward(&self, geo: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, activation: Option<Activation>, op: &str) -> Result<Tensor> {
        conv::forward(geo, x, w, bias, activation, op)
    }
    fn conv2d_input_grad(&self, geo: &Geometry, dy: &Tensor, w: &Tensor, init: Option<&Tensor>, op: &str) -> Result<Tensor> {
        conv::input_grad(geo, dy, w, init, op)
    }
    fn conv2d_weight_grad(&self, geo: &Geometry, x: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
        conv::weight_grad(geo, x, dy, op)
    }
    fn max_pool2d(&self, plan: &Plan, x: &Tensor, need_indices: bool) -> Result<(Tensor, Tensor)> {
        pool::max_pool2d(plan, x, need_indices)
    }
    fn max_pool2d_backward(&self, plan: &Plan, g: &Tensor, indices: &Tensor, in_shape: &[usize]) -> Result<Tensor> {
        pool::max_pool2d_backward(plan, g, indices, in_shape)
    }
    fn avg_pool2d(&self, plan: &Plan, x: &Tensor, count_include_pad: bool) -> Result<Tensor> {
        pool::avg_pool2d(plan, x, count_include_pad)
    }
    fn avg_pool2d_backward(&self, plan: &Plan, g: &Tensor, in_shape: &[usize], count_include_pad: bool) -> Result<Tensor> {
        pool::avg_pool2d_backward(plan, g, in_shape, count_include_pad)
    }
}
