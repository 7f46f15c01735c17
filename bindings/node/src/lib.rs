//! The N-API addon. The entries are declared once in crates/kiln-boundary and expanded into raw
//! N-API functions by fast.rs; what is left here is introspection (op table, SIMD level,
//! threads, memory), whose results are objects or whose behaviour is the binding's own.
//! Nothing here computes; errors and panics become JS exceptions.

// The entries of the shared table (crates/kiln-boundary) and the Node-only ones, as raw N-API.
mod fast;
// JS values read and made through raw N-API (the kinds' view of an argument).
mod napi_value;
use kiln_registry as registry;
// The GPU device (kiln-gpu): opening it, moving tensors, async readback.
mod gpu;
// MPI collectives (rsmpi), only in the `mpi` build: kiln-mpi.node.
#[cfg(feature = "mpi")]
mod distributed;
// DistributedDataParallel's gradient all-reduce, overlapped with backward (same `mpi` build).
#[cfg(feature = "mpi")]
mod grad_reducer;

use kiln_core::ops;
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

/// Installs the raw entry points of fast.rs next to the napi-rs ones.
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    // SAFETY: called once by napi-rs during module registration with a live env and exports object.
    unsafe { fast::install(env.raw(), exports.raw()) }
}
