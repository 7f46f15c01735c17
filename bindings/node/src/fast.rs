//! The entry points written against raw N-API. napi-rs's generated wrappers cost about 100 ns
//! per call here (measured: add+dispose of 4-element tensors ran at 2.8M/s through them, 5.9M/s
//! raw), which dominates small ops. So every entry of the shared table (crates/kiln-boundary,
//! `for_each_entry!`) is expanded here into a raw function, plus the Node-only ones (the GPU
//! device, test hooks), with the same guarantees: each argument is read by its kind
//! (napi_value.rs), KilnErrors become JS Errors naming the entry, and panics are caught.

use crate::napi_value::{NapiArg, ToJs};
use crate::panic_message;
use kiln_boundary::kinds::{DeviceName, Flag, Handle, Kind};
use kiln_core::Result;
use kiln_registry as registry;
use napi::sys;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// Reads argument `name` of `entry` as kind `K`; the error names the entry and the argument
/// (issue 13: never napi's "Failed to convert napi value ...").
#[inline]
unsafe fn arg<K: Kind>(env: sys::napi_env, entry: &str, name: &str, value: sys::napi_value) -> std::result::Result<K::Value, String> {
    K::read(entry, name, &NapiArg { env, value }).map_err(|e| e.to_string())
}

pub(crate) unsafe fn throw(env: sys::napi_env, type_error: bool, msg: String) -> sys::napi_value {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    if type_error {
        sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr());
    } else {
        sys::napi_throw_error(env, ptr::null(), msg.as_ptr());
    }
    ptr::null_mut()
}

/// Runs an entry's body: errors and panics become JS exceptions naming the entry.
unsafe fn finish<T: ToJs>(env: sys::napi_env, name: &str, body: impl FnOnce() -> Result<T>) -> sys::napi_value {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v.to_js(env),
        Ok(Err(e)) => throw(env, false, registry::name_entry(e, name).to_string()),
        Err(panic) => throw(env, false, panic_message(name, panic)),
    }
}

/// Reads the call's arguments into `argv` (N-API fills those not passed with `undefined`);
/// false (after throwing) when fewer than the `required` leading ones came.
unsafe fn arguments<const N: usize>(env: sys::napi_env, info: sys::napi_callback_info, entry: &str, required: usize, argv: &mut [sys::napi_value; N]) -> bool {
    let mut argc = N;
    sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut());
    if argc < required {
        let range = if required == N { format!("{N}") } else { format!("{required} to {N}") };
        throw(env, true, format!("{entry}: expected {range} arguments, got {argc}"));
        return false;
    }
    true
}

/// How many arguments a call must pass: all but the optional ones (which come last).
const fn required(optional: &[bool]) -> usize {
    let mut n = 0;
    while n < optional.len() && !optional[n] {
        n += 1;
    }
    n
}

/// Converts each argument by its kind, or throws a TypeError naming the entry and the argument.
macro_rules! read_arguments {
    ($env:ident, $info:ident, $js:literal, $($arg:ident: $kind:ty),*) => {
        const OPTIONAL: &[bool] = &[$(<$kind as Kind>::OPTIONAL),*];
        let mut argv = [ptr::null_mut(); OPTIONAL.len()];
        if !arguments($env, $info, $js, required(OPTIONAL), &mut argv) {
            return ptr::null_mut();
        }
        let mut _index = 0;
        $(
            let $arg = match arg::<$kind>($env, $js, stringify!($arg), argv[_index]) {
                Ok(v) => v,
                Err(message) => return throw($env, true, message),
            };
            _index += 1;
        )*
    };
}

/// Expands the shared table (kiln-boundary) into raw functions that call its bodies, and
/// `install_shared`, which exports them.
macro_rules! shared_entries {
    ($($js:literal => $name:ident($($arg:ident: $kind:ident),*) -> $ret:ty;)*) => {
        $(
            unsafe extern "C" fn $name(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
                read_arguments!(env, info, $js, $($arg: kiln_boundary::kinds::$kind),*);
                finish(env, $js, move || kiln_boundary::entries::$name($($arg),*))
            }
        )*

        unsafe fn install_shared(env: sys::napi_env, exports: sys::napi_value) -> napi::Result<()> {
            $( export(env, exports, concat!($js, "\0"), $name)?; )*
            Ok(())
        }
    };
}
kiln_boundary::for_each_entry!(shared_entries);

/// Declares Node-only raw entries: `"jsName" => fn name(arg: Kind, ...) -> type { body }`.
macro_rules! node_entries {
    ($($js:literal => fn $name:ident($($arg:ident: $kind:ty),*) -> $ret:ty $body:block)*) => {
        $(
            unsafe extern "C" fn $name(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
                read_arguments!(env, info, $js, $($arg: $kind),*);
                finish(env, $js, move || -> Result<$ret> { $body })
            }
        )*

        unsafe fn install_node(env: sys::napi_env, exports: sys::napi_value) -> napi::Result<()> {
            $( export(env, exports, concat!($js, "\0"), $name)?; )*
            Ok(())
        }
    };
}

/// Sets `exports[name]` to a raw function (`name` ends with a NUL).
unsafe fn export(env: sys::napi_env, exports: sys::napi_value, name: &'static str, f: unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value) -> napi::Result<()> {
    let mut func = ptr::null_mut();
    let status = sys::napi_create_function(env, name.as_ptr().cast(), (name.len() - 1) as isize, Some(f), ptr::null_mut(), &mut func);
    if status != sys::Status::napi_ok || sys::napi_set_named_property(env, exports, name.as_ptr().cast(), func) != sys::Status::napi_ok {
        return Err(napi::Error::from_reason(format!("could not export {}", name.trim_end_matches('\0'))));
    }
    Ok(())
}

/// Adds every raw entry point (shared and Node-only) to the module's exports.
pub unsafe fn install(env: sys::napi_env, exports: sys::napi_value) -> napi::Result<()> {
    install_shared(env, exports)?;
    install_node(env, exports)
}

node_entries! {
    // The GPU device (gpu.rs): the WASM module has none.
    "gpuInfo" => fn gpu_info() -> String { crate::gpu::info() }
    "toDevice" => fn to_device(h: Handle, device: DeviceName) -> u32 { crate::gpu::to_device(h, device) }
    "deviceOf" => fn device_of(h: Handle) -> String { crate::gpu::device_of(h) }
    "gpuSynchronize" => fn gpu_synchronize() -> bool { crate::gpu::synchronize() }

    // The shared table's kinds and arities, for the check of ts/backends/backend.ts.
    "boundaryManifest" => fn boundary_manifest() -> String { Ok(kiln_boundary::manifest_json()) }

    // Panics on purpose, on the calling thread or in a parallel region's chunks, so a test can prove a
    // Rust panic reaches JS as an Error and leaves the process running.
    "debugPanic" => fn debug_panic(in_thread_pool: Flag) -> bool {
        if in_thread_pool {
            kiln_core::parallel::for_each_chunk(4, 4, |_, _| panic!("deliberate panic in a worker thread"));
        }
        panic!("deliberate panic for tests")
    }
}
