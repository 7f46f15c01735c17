//! The N-API addon: every function takes and returns tensor handles (u32) and plain values.
//! Nothing here computes; it resolves handles, calls kiln-core, and turns errors and panics
//! into JS exceptions.

mod fast;
use kiln_registry as registry;
// Weight-only quantization (int8 tensors in and out, quantize/dequantize).
mod quant;
// The GPU device (kiln-gpu): opening it, moving tensors, async readback.
mod gpu;
// MPI collectives (rsmpi), only in the `mpi` build: kiln-mpi.node.
#[cfg(feature = "mpi")]
mod distributed;
// DistributedDataParallel's gradient all-reduce, overlapped with backward (same `mpi` build).
#[cfg(feature = "mpi")]
mod grad_reducer;

use kiln_core::ops::{self, ReduceOp, Sections};
use kiln_core::args::{dims, dtype, int, ints};
use kiln_core::{KilnError, Tensor};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A tensor handle as napi-rs receives it: an f64, checked by `handle` (a u32 parameter would
/// wrap 2^32 + 1 to the live handle 1).
type Handle = f64;

/// `v` as a live-table handle, or an error naming `entry` and `arg` (kiln-registry's check).
fn handle(entry: &str, arg: &str, v: Handle) -> kiln_core::Result<u32> {
    registry::handle(entry, arg, v)
}

/// A count or op code from napi-rs's f64: a non-negative integer, else an error naming it.
fn count(entry: &str, arg: &str, v: f64) -> kiln_core::Result<u32> {
    <kiln_boundary::kinds::Count as kiln_boundary::kinds::Kind>::from_number(entry, arg, v)
}

/// Runs `f`, turning a KilnError into a JS Error and a Rust panic into one too (never an abort).
fn guard<T>(op: &str, f: impl FnOnce() -> kiln_core::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::new(Status::InvalidArg, registry::name_entry(e, op).to_string())),
        Err(panic) => Err(Error::new(Status::GenericFailure, panic_message(op, panic))),
    }
}

/// The JS-facing message for a Rust panic: a bug in Kiln, reported instead of aborting Node.
pub(crate) fn panic_message(op: &str, panic: Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("{op}: internal error in Kiln ({msg}); please report it")
}

/// Resolves input handles, runs the op, registers the result.
fn op1(name: &str, h: Handle, f: impl FnOnce(&Tensor) -> kiln_core::Result<Tensor>) -> Result<u32> {
    guard(name, || {
        let h = handle(name, "x", h)?;
        let out = registry::with(|r| r.get(h).and_then(f))?;
        Ok(registry::register(out))
    })
}

pub(crate) use registry::register;





// ---- introspection -------------------------------------------------------------------------

/// The op names per family; a name's index is the code passed to unary/binary/reduce.
#[napi(js_name = "opTable")]
pub fn op_table() -> HashMap<String, Vec<String>> {
    ops::op_table().into_iter().map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect())).collect()
}

#[napi(js_name = "simdLevel")]
pub fn simd_level() -> String {
    kiln_core::simd::level_name().to_string()
}

/// Forces a lower SIMD level ("scalar", "avx2+fma", "avx512"); returns the level in force.
#[napi(js_name = "setSimdLevel")]
pub fn set_simd_level(name: String) -> Result<String> {
    use kiln_core::simd::{set_level, SimdLevel};
    let level = match name.as_str() {
        "scalar" => SimdLevel::Scalar,
        "avx2+fma" => SimdLevel::Avx2Fma,
        "avx512" => SimdLevel::Avx512,
        _ => return Err(Error::new(Status::InvalidArg, format!("setSimdLevel: unknown level '{name}'"))),
    };
    set_level(level);
    Ok(simd_level())
}

#[napi(js_name = "numThreads")]
pub fn num_threads() -> u32 {
    kiln_core::parallel::num_threads() as u32
}

#[napi(object)]
pub struct MemoryInfo {
    /// Live tensor handles.
    pub tensors: u32,
    /// Distinct live buffers (views share one).
    pub buffers: u32,
    /// Bytes held by live buffers.
    pub bytes: f64,
}

#[napi]
pub fn memory() -> MemoryInfo {
    let (buffers, bytes) = kiln_core::storage::live_memory();
    MemoryInfo { tensors: registry::with(|r| r.live()) as u32, buffers: buffers as u32, bytes: bytes as f64 }
}

// ---- data in and out -----------------------------------------------------------------------

#[napi(js_name = "fromF32")]
pub fn from_f32(data: Float32ArraySlice, shape: Vec<f64>) -> Result<u32> {
    guard("tensor", || Ok(register(Tensor::from_vec(data.as_ref().to_vec(), &dims("tensor", &shape)?)?)))
}

#[napi(js_name = "fromI32")]
pub fn from_i32(data: Int32ArraySlice, shape: Vec<f64>) -> Result<u32> {
    guard("tensor", || Ok(register(Tensor::from_vec(data.as_ref().to_vec(), &dims("tensor", &shape)?)?)))
}

#[napi(js_name = "fromBool")]
pub fn from_bool(data: Uint8ArraySlice, shape: Vec<f64>) -> Result<u32> {
    guard("tensor", || {
        let v = data.as_ref().iter().map(|&b| (b != 0) as u8).collect();
        Ok(register(Tensor::from_vec::<u8>(v, &dims("tensor", &shape)?)?))
    })
}

#[napi]
pub fn shape(h: Handle) -> Result<Vec<f64>> {
    // f64, not u32: a dimension of 2^32 or more must come back whole (dims() caps them at 2^53 - 1).
    guard("shape", || registry::with(|r| Ok(r.get(handle("shape", "h", h)?)?.shape().iter().map(|&d| d as f64).collect())))
}

#[napi]
pub fn dtype_of(h: Handle) -> Result<String> {
    guard("dtype", || registry::with(|r| Ok(r.get(handle("dtype", "h", h)?)?.dtype().name().to_string())))
}

// ---- reductions ----------------------------------------------------------------------------

#[napi]
pub fn reduce(op: f64, x: Handle, reduce_axes: Vec<f64>, keep_dims: bool, correction: f64) -> Result<u32> {
    op1("reduce", x, |t| {
        let op = count("reduce", "op", op)?;
        let op = ReduceOp::ALL.get(op as usize).copied().ok_or_else(|| KilnError::new("reduce", format!("unknown op code {op}")))?;
        ops::reduce(op, t, &ints(op.name(), &reduce_axes)?, keep_dims, count(op.name(), "correction", correction)? as usize)
    })
}



// ---- views and shape ops -------------------------------------------------------------------

#[napi]
pub fn reshape(x: Handle, new_shape: Vec<f64>) -> Result<u32> {
    op1("reshape", x, |t| t.reshape(&ints("reshape", &new_shape)?))
}

#[napi]
pub fn permute(x: Handle, perm: Vec<f64>) -> Result<u32> {
    op1("permute", x, |t| t.permute(&ints("permute", &perm)?))
}

#[napi]
pub fn slice(x: Handle, begin: Vec<f64>, size: Vec<f64>) -> Result<u32> {
    op1("slice", x, |t| t.slice(&ints("slice", &begin)?, &ints("slice", &size)?))
}

#[napi]
pub fn expand(x: Handle, new_shape: Vec<f64>) -> Result<u32> {
    op1("expand", x, |t| t.expand(&dims("expand", &new_shape)?))
}



#[napi]
pub fn squeeze(x: Handle, squeeze_axes: Vec<f64>) -> Result<u32> {
    op1("squeeze", x, |t| t.squeeze(&ints("squeeze", &squeeze_axes)?))
}


#[napi]
pub fn cast(x: Handle, to: String) -> Result<u32> {
    op1("cast", x, |t| ops::cast(t, dtype("cast", &to)?))
}

/// The tensors behind a list of handles, each checked.
fn resolve_all(entry: &str, arg: &str, hs: &[Handle]) -> kiln_core::Result<Vec<Tensor>> {
    let hs = hs.iter().map(|&h| handle(entry, arg, h)).collect::<kiln_core::Result<Vec<u32>>>()?;
    registry::resolve_all(&hs)
}

#[napi]
pub fn concat(tensors: Vec<Handle>, axis: f64) -> Result<u32> {
    guard("concat", || Ok(register(ops::concat(&resolve_all("concat", "tensors", &tensors)?, int("concat", axis)?)?)))
}

#[napi]
pub fn stack(tensors: Vec<Handle>, axis: f64) -> Result<u32> {
    guard("stack", || Ok(register(ops::stack(&resolve_all("stack", "tensors", &tensors)?, int("stack", axis)?)?)))
}

/// Splits into `count` equal parts when `sizes` is empty, else into parts of `sizes`.
#[napi]
pub fn split(x: Handle, sizes: Vec<f64>, count: f64, axis: f64) -> Result<Vec<u32>> {
    guard("split", || {
        let sections = if sizes.is_empty() { Sections::Count(self::count("split", "count", count)? as usize) } else { Sections::Sizes(dims("split", &sizes)?) };
        let parts = registry::with(|r| ops::split(r.get(handle("split", "x", x)?)?, sections, int("split", axis)?))?;
        Ok(parts.into_iter().map(register).collect())
    })
}




/// `paddings` is flat: [before0, after0, before1, after1, ...].
#[napi]
pub fn pad(x: Handle, paddings: Vec<f64>, value: f64) -> Result<u32> {
    op1("pad", x, |t| {
        let flat = dims("pad", &paddings)?;
        if flat.len() % 2 != 0 {
            return Err(KilnError::new("pad", format!("paddings must come in (before, after) pairs, got {paddings:?}")));
        }
        let pairs: Vec<(usize, usize)> = flat.chunks(2).map(|p| (p[0], p[1])).collect();
        ops::pad(t, &pairs, value)
    })
}

// ---- creation ------------------------------------------------------------------------------

#[napi]
pub fn full(new_shape: Vec<f64>, value: f64, dtype_name: String, op_name: Option<String>) -> Result<u32> {
    let op = op_name.unwrap_or_else(|| "full".to_string());
    guard(&op, || Ok(register(ops::creation::full_named(&op, &dims(&op, &new_shape)?, value, dtype(&op, &dtype_name)?)?)))
}

#[napi]
pub fn arange(start: f64, stop: f64, step: f64, dtype_name: String) -> Result<u32> {
    guard("arange", || Ok(register(ops::arange(start, stop, step, dtype("arange", &dtype_name)?)?)))
}


fn seed_of(seed: Option<f64>) -> Option<u64> {
    seed.map(|s| s as u64)
}

#[napi]
pub fn randn(new_shape: Vec<f64>, mean: f64, std: f64, seed: Option<f64>) -> Result<u32> {
    guard("randn", || Ok(register(ops::randn(&dims("randn", &new_shape)?, mean as f32, std as f32, seed_of(seed))?)))
}

#[napi]
pub fn randu(new_shape: Vec<f64>, low: f64, high: f64, seed: Option<f64>) -> Result<u32> {
    guard("randu", || Ok(register(ops::randu(&dims("randu", &new_shape)?, low as f32, high as f32, seed_of(seed))?)))
}

#[napi(js_name = "setSeed")]
pub fn set_seed(seed: f64) {
    kiln_core::random::set_seed(seed as u64);
}


/// Installs the raw entry points of fast.rs next to the napi-rs ones.
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    // SAFETY: called once by napi-rs during module registration with a live env and exports object.
    unsafe { fast::install(env.raw(), exports.raw()) }
}

// ---- autograd: gradients returned, not accumulated (interpretability) ----------------------

/// d(root)/d(input) per input as new handles (-1 where root does not depend on the input);
/// `seed` is a handle, or -1 for the implicit 1 of a one-element root. No leaf's grad changes.
#[napi]
pub fn gradients(root: Handle, seed: f64, inputs: Vec<Handle>) -> Result<Vec<f64>> {
    guard("gradients", || {
        let seed = registry::optional_handle("gradients", "seed", seed)?;
        let (root, inputs) = (handle("gradients", "root", root)?, resolve_all("gradients", "inputs", &inputs)?);
        let grads = registry::with(|r| {
            let seed = seed.map(|s| r.get(s).cloned()).transpose()?;
            kiln_core::autograd::gradients(r.get(root)?, seed.as_ref(), &inputs.iter().collect::<Vec<_>>())
        })?;
        Ok(grads.into_iter().map(|g| g.map_or(-1.0, |g| register(g) as f64)).collect())
    })
}
