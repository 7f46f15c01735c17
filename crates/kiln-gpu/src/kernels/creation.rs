//! Tensors made on the device: full / zeros / ones, arange, eye, and the random fills.
//!
//! randn and randu are generated on the host by kiln-core and uploaded: a seeded call then gives
//! exactly the CPU's numbers (same seed, same weights on every backend, so a run can move between
//! backends and a test can compare them), at the cost of one upload, which initialisation pays
//! once. A GPU generator (Philox, say) would be faster for per-step noise such as dropout masks,
//! but could not reproduce kiln-core's stream.
//!
//! arange is filled on the device when every value is an integer below 2^24 (then f32 arithmetic
//! is exact and equals the CPU's f64 computation); other ranges are computed on the host in f64,
//! as kiln-core does, and uploaded, so the values agree bit for bit either way.

use super::launch::{run_1d, Kernel};
use super::Params;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::{ops, DType, KilnError, Result};

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

pub fn ones(dev: &GpuDevice, shape: &[usize], dtype: DType) -> Result<GpuTensor> {
    full_named(dev, "ones", shape, 1.0, dtype)
}

/// start, start + step, ... below stop (above, for a negative step) -> [count], float32 or int32.
pub fn arange(dev: &GpuDevice, start: f64, stop: f64, step: f64, dtype: DType) -> Result<GpuTensor> {
    const OP: &str = "arange";
    // Every value lies within |start| and |stop| + |step|: integers below 2^24 keep f32 exact.
    let small = |v: f64| v.abs() < (1 << 24) as f64;
    let exact = start.fract() == 0.0 && step.fract() == 0.0 && small(start) && small(stop.abs() + step.abs()) && small(stop - start);
    if !exact || !matches!(dtype, DType::F32 | DType::I32) {
        return GpuTensor::upload(dev, &ops::arange(start, stop, step, dtype)?);
    }
    // An empty range validates the arguments (finite, non-zero step) with kiln-core's message.
    ops::arange(start, start, step, dtype)?;
    let count = ((stop - start) / step).ceil().max(0.0) as usize;
    let out = GpuTensor::empty(dev, OP, &[count], dtype)?;
    let expr = if dtype == DType::F32 { "bitcast<u32>(v)" } else { "bitcast<u32>(i32(v))" };
    let body = format!("  let v = pf(1u) + f32(i) * pf(2u);\n  out[i] = {expr};");
    let key = format!("arange:{}", dtype.name());
    let decls = "@group(0) @binding(1) var<storage, read_write> out: array<u32>;";
    let params = Params::default().u32(count).f32(start as f32).f32(step as f32);
    run_1d(dev, Kernel { op: OP, key: &key, decls, body: &body, check: None }, count, params, &[out.buffer()])?;
    Ok(out)
}

/// Identity matrix [rows, cols], float32.
pub fn eye(dev: &GpuDevice, rows: usize, cols: usize) -> Result<GpuTensor> {
    const OP: &str = "eye";
    let out = GpuTensor::empty(dev, OP, &[rows, cols], DType::F32)?;
    let n = out.numel();
    let decls = "@group(0) @binding(1) var<storage, read_write> out: array<f32>;";
    let body = "  out[i] = select(0.0, 1.0, i / p(1u) == i % p(1u));";
    run_1d(dev, Kernel { op: OP, key: "eye", decls, body, check: None }, n, Params::default().u32(n).u32(cols), &[out.buffer()])?;
    Ok(out)
}

/// Normal samples from kiln-core's generator, uploaded (same seed, same numbers as the CPU).
pub fn randn(dev: &GpuDevice, shape: &[usize], mean: f32, std: f32, seed: Option<u64>) -> Result<GpuTensor> {
    GpuTensor::upload(dev, &ops::randn(shape, mean, std, seed)?)
}

/// Uniform samples in [low, high) from kiln-core's generator, uploaded.
pub fn randu(dev: &GpuDevice, shape: &[usize], low: f32, high: f32, seed: Option<u64>) -> Result<GpuTensor> {
    GpuTensor::upload(dev, &ops::randu(shape, low, high, seed)?)
}
