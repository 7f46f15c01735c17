//! The entry points written against raw N-API. napi-rs's generated wrappers cost about 100 ns
//! per call here (measured: add+dispose of 4-element tensors ran at 2.8M/s through them, 5.9M/s
//! raw), which dominates small ops. So every entry of the shared table (crates/kiln-boundary,
//! `for_each_entry!`) is expanded here into a raw function, plus the few whose results are
//! Node-specific (typed-array readbacks), with the same guarantees as the napi-rs ones:
//! each argument is checked by its kind, KilnErrors become JS Errors naming the entry, and
//! panics are caught.

use crate::panic_message;
use kiln_boundary::kinds::{wrong_kind, Handle, Kind};
use kiln_core::{KilnError, Result, Tensor};
use kiln_registry as registry;
use napi::sys;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// Reads argument `name` of `entry` as kind `K`: a JS boolean for flags, a number otherwise,
/// then the kind's own check. The error names the entry and the argument (issue 13: never
/// napi's "Failed to convert napi value ...").
unsafe fn arg<K: Kind>(env: sys::napi_env, entry: &str, name: &str, v: sys::napi_value) -> std::result::Result<K::Value, String> {
    if K::IS_FLAG {
        let mut b = false;
        if sys::napi_get_value_bool(env, v, &mut b) == sys::Status::napi_ok {
            return K::from_bool(entry, name, b).map_err(|e| e.to_string());
        }
    } else {
        let mut x = 0.0;
        if sys::napi_get_value_double(env, v, &mut x) == sys::Status::napi_ok {
            return K::from_number(entry, name, x).map_err(|e| e.to_string());
        }
    }
    Err(wrong_kind::<K>(entry, name, &describe_js(env, v)).to_string())
}

/// A Rust result that converts to a JS value.
trait ToJs {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value;
}

impl ToJs for u32 {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_create_uint32(env, self, &mut v);
        v
    }
}

impl ToJs for f64 {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_create_double(env, self, &mut v);
        v
    }
}

impl ToJs for bool {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_get_boolean(env, self, &mut v);
        v
    }
}

impl ToJs for String {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_create_string_utf8(env, self.as_ptr().cast(), self.len() as isize, &mut v);
        v
    }
}

/// Tensor contents read back to JS. Copied into an ArrayBuffer that V8 owns: an external buffer
/// (napi-rs's Float32Array::new) is only freed by a finalizer that runs when the event loop
/// turns, so a synchronous loop of reads grew without bound (5,000 reads of 256 KB: 1.3 GB).
pub enum Readback {
    F32(Vec<f32>),
    I32(Vec<i32>),
    Bool(Vec<u8>),
    I8(Vec<i8>),
}

impl Readback {
    /// Copies the elements into a new JS typed array (null after throwing if that fails).
    pub(crate) unsafe fn into_js(self, env: sys::napi_env) -> sys::napi_value {
        self.to_js(env)
    }
}

impl ToJs for Readback {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let (bytes, len, kind): (&[u8], usize, i32) = match &self {
            Readback::F32(v) => (std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4), v.len(), sys::TypedarrayType::float32_array),
            Readback::I32(v) => (std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4), v.len(), sys::TypedarrayType::int32_array),
            Readback::Bool(v) => (v.as_slice(), v.len(), sys::TypedarrayType::uint8_array),
            Readback::I8(v) => (std::slice::from_raw_parts(v.as_ptr().cast(), v.len()), v.len(), sys::TypedarrayType::int8_array),
        };
        let (mut data, mut buffer, mut array) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        if sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut buffer) != sys::Status::napi_ok {
            return throw(env, false, format!("data: cannot allocate {} bytes for the readback", bytes.len()));
        }
        if !bytes.is_empty() {
            ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len());
        }
        sys::napi_create_typedarray(env, kind, len, buffer, 0, &mut array);
        array
    }
}

fn read(h: u32, dtype: kiln_core::DType) -> Result<Readback> {
    let t = registry::with(|r| r.get(h).cloned())?;
    t.expect_dtype("data", dtype)?;
    readback(&t)
}

/// A tensor's elements for JS; a tensor on a device is downloaded first (and waits for it).
pub(crate) fn readback(t: &Tensor) -> Result<Readback> {
    let dtype = t.dtype();
    let downloaded;
    let t = match t.device() {
        Some(device) => {
            downloaded = device.download(t)?;
            &downloaded
        }
        None => t,
    };
    let fail = || KilnError::new("data", "cannot copy the tensor for reading");
    Ok(match dtype {
        kiln_core::DType::F32 => Readback::F32(t.to_vec().ok_or_else(fail)?),
        kiln_core::DType::I32 => Readback::I32(t.to_vec().ok_or_else(fail)?),
        kiln_core::DType::I8 => Readback::I8(t.to_vec().ok_or_else(fail)?),
        _ => Readback::Bool(t.to_vec().ok_or_else(fail)?),
    })
}

unsafe fn throw(env: sys::napi_env, type_error: bool, msg: String) -> sys::napi_value {
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

/// A rejected argument as the error shows it: a number as Rust prints an f64, which is how the
/// kinds show the numbers they refuse, so both backends word the error alike.
unsafe fn describe_js(env: sys::napi_env, v: sys::napi_value) -> String {
    let mut kind = 0;
    sys::napi_typeof(env, v, &mut kind);
    match kind {
        sys::ValueType::napi_number => {
            let mut x = 0.0;
            sys::napi_get_value_double(env, v, &mut x);
            return format!("{x}");
        }
        sys::ValueType::napi_undefined => "undefined",
        sys::ValueType::napi_null => "null",
        sys::ValueType::napi_boolean => "a boolean",
        sys::ValueType::napi_string => "a string",
        sys::ValueType::napi_object => "an object",
        sys::ValueType::napi_function => "a function",
        _ => "a value of another type",
    }
    .to_string()
}

/// Reads the call's arguments into `argv`; false (after throwing) when fewer than `N` came.
unsafe fn arguments<const N: usize>(env: sys::napi_env, info: sys::napi_callback_info, entry: &str, argv: &mut [sys::napi_value; N]) -> bool {
    let mut argc = N;
    sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut());
    if argc < N {
        throw(env, true, format!("{entry}: expected {N} arguments, got {argc}"));
        return false;
    }
    true
}

/// Converts each argument by its kind, or throws a TypeError naming the entry and the argument.
macro_rules! read_arguments {
    ($env:ident, $info:ident, $js:literal, $($arg:ident: $kind:ty),*) => {
        const ARGC: usize = { let names: &[&str] = &[$(stringify!($arg)),*]; names.len() };
        let mut argv = [ptr::null_mut(); ARGC];
        if !arguments($env, $info, $js, &mut argv) {
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
    "readF32" => fn read_f32(h: Handle) -> Readback { read(h, kiln_core::DType::F32) }
    "readI32" => fn read_i32(h: Handle) -> Readback { read(h, kiln_core::DType::I32) }
    "readBool" => fn read_bool(h: Handle) -> Readback { read(h, kiln_core::DType::Bool) }
    "readI8" => fn read_i8(h: Handle) -> Readback { read(h, kiln_core::DType::I8) }
    // The shared table's kinds and arities, for the check of ts/backends/backend.ts.
    "boundaryManifest" => fn boundary_manifest() -> String { Ok(kiln_boundary::manifest_json()) }

    // Panics on purpose, on the calling thread or inside the rayon pool, so a test can prove a
    // Rust panic reaches JS as an Error and leaves the process running.
    "debugPanic" => fn debug_panic(in_thread_pool: kiln_boundary::kinds::Flag) -> bool {
        if in_thread_pool {
            kiln_core::parallel::for_each_chunk(4, 4, |_, _| panic!("deliberate panic in a worker thread"));
        }
        panic!("deliberate panic for tests")
    }
}
