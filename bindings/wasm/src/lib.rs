//! The WASM module: the same flat contract as the N-API addon (ts/backends/backend.ts), exported
//! with wasm-bindgen. Every function takes and returns tensor handles (u32) and plain values;
//! nothing here computes. A KilnError becomes a thrown JS Error with kiln-core's message (op,
//! shapes, dtypes).
//!
//! Panics: wasm32-unknown-unknown cannot unwind, so a Rust panic cannot be caught and turned into
//! an Error the way the N-API addon does. The panic hook below records the message; then the
//! instance aborts (a `RuntimeError: unreachable` in JS) and its state (the tensor registry) is
//! lost. ts/backends/wasm.ts reports that as an Error naming the op and the panic message, and
//! refuses further calls on the dead instance. Panics are bugs in Kiln: bad user input returns
//! a KilnError, never a panic.

mod entries;
#[cfg(feature = "gpu")]
mod gpu;
mod ops;
mod threads;
use kiln_registry as registry;

pub(crate) use kiln_core::args::{dims, dtype, int, ints};
use kiln_core::{DType, KilnError, Tensor};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// A tensor handle as it crosses: an f64, checked by `handle` (wasm-bindgen's u32 would wrap
/// 2^32 + 1 to the live handle 1, and cut 1.5 to 1).
pub(crate) type Handle = f64;

/// `v` as a live-table handle, or an error naming `entry` and `arg` (kiln-registry's check).
pub(crate) fn handle(entry: &str, arg: &str, v: Handle) -> kiln_core::Result<u32> {
    registry::handle(entry, arg, v)
}
pub(crate) type Result<T> = std::result::Result<T, JsError>;

pub(crate) fn js_error(e: KilnError) -> JsError {
    JsError::new(&e.to_string())
}

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs once when the module is instantiated.
#[wasm_bindgen(start)]
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        // try_borrow_mut: a panic while the message is being written must not panic again.
        LAST_PANIC.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                *p = format!("{msg}{at}");
            }
        });
    }));
}

/// The message of the panic that aborted the instance ("" if none); read by wasm.ts after a trap.
#[wasm_bindgen(js_name = "lastPanic")]
pub fn last_panic() -> String {
    LAST_PANIC.with(|p| p.try_borrow().map(|p| p.clone()).unwrap_or_default())
}

pub(crate) use registry::register;

/// Resolves `x` (checked), runs the op, registers the result; errors name `entry`.
pub(crate) fn op1(entry: &str, x: Handle, f: impl FnOnce(&Tensor) -> kiln_core::Result<Tensor>) -> Result<u32> {
    let run = || {
        let x = handle(entry, "x", x)?;
        registry::with_tensors([x], |[t]| f(t))
    };
    run().map_err(|e| js_error(registry::name_entry(e, entry)))
}

/// A count or code that must be a whole non-negative number (wasm-bindgen would silently
/// truncate 2.5 to 2 for a u32 argument, so these arrive as f64 and are checked here).
pub(crate) fn whole(op: &str, arg: &str, v: f64) -> kiln_core::Result<u32> {
    if v.fract() == 0.0 && v >= 0.0 && v <= u32::MAX as f64 {
        Ok(v as u32)
    } else {
        Err(KilnError::new(op, format!("argument '{arg}' must be a non-negative integer, got {v}")))
    }
}


// ---- introspection -------------------------------------------------------------------------

/// The op names per family; a name's index is the code passed to unary/binary/reduce.
#[wasm_bindgen(js_name = "opTable")]
pub fn op_table() -> js_sys::Object {
    let table = js_sys::Object::new();
    for (family, names) in kiln_core::ops::op_table() {
        let list: js_sys::Array = names.into_iter().map(JsValue::from_str).collect();
        js_sys::Reflect::set(&table, &JsValue::from_str(family), &list).expect("setting a property on a plain object");
    }
    table
}

#[wasm_bindgen(js_name = "simdLevel")]
pub fn simd_level() -> String {
    kiln_core::simd::level_name().to_string()
}

/// WASM has one instruction set (simd128 is fixed at build time): every request leaves it as is,
/// except an unknown name, which is an error as on the native backend.
#[wasm_bindgen(js_name = "setSimdLevel")]
pub fn set_simd_level(name: String) -> Result<String> {
    match name.as_str() {
        "scalar" | "avx2+fma" | "avx512" | "wasm-simd128" | "wasm-relaxed-simd" => Ok(simd_level()),
        _ => Err(JsError::new(&format!("setSimdLevel: unknown level '{name}'"))),
    }
}

#[wasm_bindgen(js_name = "numThreads")]
pub fn num_threads() -> u32 {
    kiln_core::parallel::num_threads() as u32
}

/// { tensors: live handles, buffers: distinct live buffers, bytes: bytes they hold }. Exported as
/// `liveMemory` because the module's linear memory already owns the export name `memory`;
/// ts/backends/wasm.ts presents it as the contract's `memory()`.
#[wasm_bindgen(js_name = "liveMemory")]
pub fn memory() -> js_sys::Object {
    let (buffers, bytes) = kiln_core::storage::live_memory();
    let tensors = registry::with(|r| r.live());
    let info = js_sys::Object::new();
    for (key, value) in [("tensors", tensors as f64), ("buffers", buffers as f64), ("bytes", bytes as f64)] {
        js_sys::Reflect::set(&info, &JsValue::from_str(key), &JsValue::from_f64(value)).expect("setting a property on a plain object");
    }
    info
}

// ---- data in and out -----------------------------------------------------------------------
// Vec<T> arguments are copied once into WASM memory and then owned by the tensor (no second copy).

#[wasm_bindgen(js_name = "fromF32")]
pub fn from_f32(data: Vec<f32>, shape: Vec<f64>) -> Result<u32> {
    let t = Tensor::from_vec(data, &dims("tensor", &shape).map_err(js_error)?).map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen(js_name = "fromI32")]
pub fn from_i32(data: Vec<i32>, shape: Vec<f64>) -> Result<u32> {
    let t = Tensor::from_vec(data, &dims("tensor", &shape).map_err(js_error)?).map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen(js_name = "fromBool")]
pub fn from_bool(mut data: Vec<u8>, shape: Vec<f64>) -> Result<u32> {
    data.iter_mut().for_each(|b| *b = (*b != 0) as u8);
    let t = Tensor::from_vec::<u8>(data, &dims("tensor", &shape).map_err(js_error)?).map_err(js_error)?;
    Ok(register(t))
}

#[wasm_bindgen]
pub fn shape(h: Handle) -> Result<js_sys::Array> {
    let run = || registry::with(|r| Ok(r.get(handle("shape", "h", h)?)?.shape().iter().map(|&d| JsValue::from_f64(d as f64)).collect()));
    run().map_err(|e| js_error(registry::name_entry(e, "shape")))
}

#[wasm_bindgen(js_name = "dtypeOf")]
pub fn dtype_of(h: Handle) -> Result<String> {
    let run = || registry::with(|r| Ok(r.get(handle("dtype", "h", h)?)?.dtype().name().to_string()));
    run().map_err(|e| js_error(registry::name_entry(e, "dtype")))
}

pub(crate) fn read<T: kiln_core::storage::Element>(h: Handle, want: DType) -> Result<Vec<T>> {
    let run = || {
        let t = registry::with(|r| r.get(handle("data", "h", h)?).cloned())?;
        t.expect_dtype("data", want)?;
        // A GPU tensor (the GPU module) is downloaded first; in a browser that is the error
        // naming `await t.data()`, since a page cannot wait for the GPU.
        let t = match t.device() {
            Some(device) => kiln_core::device::Device::download(device.as_ref(), &t)?,
            None => t,
        };
        // Fallible: an expanded view may stand for more elements than WASM's memory holds.
        t.elements::<T>("data")
    };
    run().map_err(|e| js_error(registry::name_entry(e, "data")))
}

#[wasm_bindgen(js_name = "readF32")]
pub fn read_f32(h: Handle) -> Result<Vec<f32>> {
    read(h, DType::F32)
}

#[wasm_bindgen(js_name = "readI32")]
pub fn read_i32(h: Handle) -> Result<Vec<i32>> {
    read(h, DType::I32)
}

#[wasm_bindgen(js_name = "readBool")]
pub fn read_bool(h: Handle) -> Result<Vec<u8>> {
    read(h, DType::Bool)
}

/// Test hook. On WASM a panic aborts the instance (see the module comment): this exists so the
/// contract is complete, and calling it kills the instance.
#[wasm_bindgen(js_name = "debugPanic")]
pub fn debug_panic(in_thread_pool: bool) -> bool {
    if in_thread_pool {
        panic!("deliberate panic (no thread pool on single-threaded WASM)");
    }
    panic!("deliberate panic for tests")
}
