//! Tensors made from nothing: constants, ranges, identity, random.

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::layout::checked_numel;
use crate::random;
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;

/// A tensor of `shape` filled with `value`, converted to `dtype`.
pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
    full_named("full", shape, value, dtype)
}

/// `full` reporting errors as `op` (zeros, ones, ...). A creation op has no input to dispatch
/// on: it makes a CPU tensor (`Tensor.to(device)` moves it).
pub fn full_named(op: &str, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
    crate::device::cpu::creation::full(op, shape, value, dtype)
}

pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
    full(shape, 0.0, dtype)
}

pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
    full(shape, 1.0, dtype)
}

/// start, start+step, ... up to but excluding stop: -> [ceil((stop-start)/step)].
pub fn arange(start: f64, stop: f64, step: f64, dtype: DType) -> Result<Tensor> {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
        return Err(KilnError::new("arange", format!("needs finite start/stop and a non-zero step, got start={start}, stop={stop}, step={step}")));
    }
    let count = ((stop - start) / step).ceil().max(0.0);
    if count > (isize::MAX as f64) / 4.0 {
        return Err(KilnError::new("arange", format!("start={start}, stop={stop}, step={step} would make {count:e} elements, more than can be addressed")));
    }
    let count = count as usize;
    let value = |i: usize| start + i as f64 * step;
    let buffer = match dtype {
        DType::F32 => Buffer::F32(fill_with(try_zeroed("arange", count)?, |i| value(i) as f32)),
        DType::I32 => Buffer::I32(fill_with(try_zeroed("arange", count)?, |i| value(i) as i32)),
        other => return Err(KilnError::new("arange", format!("dtype {other} is not supported (use float32 or int32)"))),
    };
    Ok(Tensor::from_buffer(buffer, &[count]))
}

/// Identity matrix: [rows, cols] with ones on the main diagonal.
pub fn eye(rows: usize, cols: usize) -> Result<Tensor> {
    let mut data = try_zeroed::<f32>("eye", checked_numel("eye", &[rows, cols])?)?;
    for i in 0..rows.min(cols) {
        data[i * cols + i] = 1.0;
    }
    Ok(Tensor::from_buffer(Buffer::F32(data), &[rows, cols]))
}

fn fill_with<T>(mut v: Vec<T>, f: impl Fn(usize) -> T) -> Vec<T> {
    v.iter_mut().enumerate().for_each(|(i, x)| *x = f(i));
    v
}

/// Normal samples: -> `shape`, float32. Same seed, same numbers.
pub fn randn(shape: &[usize], mean: f32, std: f32, seed: Option<u64>) -> Result<Tensor> {
    if !(std >= 0.0) || !mean.is_finite() || !std.is_finite() {
        return Err(KilnError::new("randn", format!("needs a finite mean and std >= 0, got mean={mean}, std={std}")));
    }
    let mut data = try_zeroed::<f32>("randn", checked_numel("randn", shape)?)?;
    random::with_rng(seed, |rng| rng.fill_normal(&mut data, mean, std));
    Ok(Tensor::from_buffer(Buffer::F32(data), shape))
}

/// Uniform samples in [low, high): -> `shape`, float32. Same seed, same numbers.
pub fn randu(shape: &[usize], low: f32, high: f32, seed: Option<u64>) -> Result<Tensor> {
    if !(low <= high) || !low.is_finite() || !high.is_finite() {
        return Err(KilnError::new("randu", format!("needs finite low <= high, got low={low}, high={high}")));
    }
    let mut data = try_zeroed::<f32>("randu", checked_numel("randu", shape)?)?;
    random::with_rng(seed, |rng| rng.fill_uniform(&mut data, low, high));
    Ok(Tensor::from_buffer(Buffer::F32(data), shape))
}
