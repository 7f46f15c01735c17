//! Tensors filled on the device: full and zeros (the GPU backend's constants, pad's background).
//! arange, eye and the random fills reach the GPU through kiln-core (made on the host, then
//! uploaded by the backend), so a seeded call gives exactly the CPU's numbers.

use super::launch::{run_1d, Kernel};
use super::Params;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::{DType, KilnError, Result};

/// The 32-bit word `value` is stored as in a tensor of `dtype` (kiln-core's conversion rules).
fn word(op: &str, value: f64, dtype: DType) -> Result<u32> {
    Ok(match dtype {
        DType::F32 => (value as f32).to_bits(),
        DType::I32 => value as i32 as u32,
        DType::Bool => (value != 0.0) as u32,
        other => return Err(KilnError::new(op, format!("dtype {other} is not supported yet (use float32, int32 or bool)"))),
    })
}

/// A tensor of `shape` filled with `value` converted to `dtype`.
pub fn full(dev: &GpuDevice, shape: &[usize], value: f64, dtype: DType) -> Result<GpuTensor> {
    full_named(dev, "full", shape, value, dtype)
}

/// `full` reporting errors as `op` (zeros, ones, pad...).
pub fn full_named(dev: &GpuDevice, op: &str, shape: &[usize], value: f64, dtype: DType) -> Result<GpuTensor> {
    let w = word(op, value, dtype)?;
    let out = GpuTensor::empty(dev, op, shape, dtype)?;
    let n = out.numel();
    let decls = "@group(0) @binding(1) var<storage, read_write> out: array<u32>;";
    let kernel = Kernel { op, key: "fill", decls, body: "  out[i] = p(1u);", check: None };
    run_1d(dev, kernel, n, Params::default().u32(n).u32(w as usize), &[out.buffer()])?;
    Ok(out)
}

pub fn zeros(dev: &GpuDevice, shape: &[usize], dtype: DType) -> Result<GpuTensor> {
    full_named(dev, "zeros", shape, 0.0, dtype)
}

