//! The WASM module: the same flat contract as the N-API addon (ts/backends/backend.ts), exported
//! with wasm-bindgen. The entries are declared once in crates/kiln-boundary and expanded by
//! entries.rs; what is left here is introspection and the panic hook. Nothing here computes. A KilnError becomes a thrown JS Error with kiln-core's message (op,
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
mod js_value;
mod threads;
use kiln_registry as registry;

use kiln_core::KilnError;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

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

/// Test hook. On WASM a panic aborts the instance (see the module comment): this exists so the
/// contract is complete, and calling it kills the instance.
#[wasm_bindgen(js_name = "debugPanic")]
pub fn debug_panic(in_thread_pool: bool) -> bool {
    if in_thread_pool {
        panic!("deliberate panic (no thread pool on single-threaded WASM)");
    }
    panic!("deliberate panic for tests")
}
