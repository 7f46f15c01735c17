//! New tensors from shapes and numbers, and the random generator's seed.

use kiln_core::{args, ops, DType, Result};
use kiln_registry::register;

type H = u32;

/// `op_name`: the op to name in errors (zeros, ones, ...), so the shape is checked here.
pub fn full(shape: Vec<f64>, value: f64, dtype: String, op_name: Option<String>) -> Result<H> {
    let op = op_name.as_deref().unwrap_or("full");
    Ok(register(ops::creation::full_named(op, &args::dims(op, &shape)?, value, args::dtype(op, &dtype)?)?))
}

pub fn arange(start: f64, stop: f64, step: f64, dtype: DType) -> Result<H> {
    Ok(register(ops::arange(start, stop, step, dtype)?))
}

pub fn randn(shape: Vec<usize>, mean: f64, std: f64, seed: Option<u64>) -> Result<H> {
    Ok(register(ops::randn(&shape, mean as f32, std as f32, seed)?))
}

pub fn randu(shape: Vec<usize>, low: f64, high: f64, seed: Option<u64>) -> Result<H> {
    Ok(register(ops::randu(&shape, low as f32, high as f32, seed)?))
}

pub fn set_seed(seed: u64) -> Result<()> {
    kiln_core::random::set_seed(seed);
    Ok(())
}
