//! JS values through raw N-API, both ways: `NapiArg` is how the kinds of the shared table
//! (crates/kiln-boundary) read an argument, `ToJs` how a result becomes a JS value. Raw rather
//! than napi-rs's conversions: those cost about 100 ns a call and word their errors their own
//! way ("Failed to convert napi value ..."), where every error must name the entry and argument.

use kiln_boundary::js::JsArg;
use napi::sys;
use std::ptr;

/// One argument as N-API hands it over, with the env to read it in.
#[derive(Clone, Copy)]
pub struct NapiArg {
    pub env: sys::napi_env,
    pub value: sys::napi_value,
}

impl NapiArg {
    fn type_of(&self) -> sys::napi_valuetype {
        let mut kind = 0;
        // SAFETY: env and value come from the current call (see fast.rs `arguments`).
        unsafe { sys::napi_typeof(self.env, self.value, &mut kind) };
        kind
    }

    /// (element type, elements, pointer to the first) of a typed array.
    fn typed_array(&self) -> Option<(sys::napi_typedarray_type, usize, *const u8)> {
        let (mut is_typed, mut kind, mut len, mut data, mut offset) = (false, 0, 0usize, ptr::null_mut(), 0usize);
        // SAFETY: as above; N-API writes the out-parameters only on success.
        unsafe {
            sys::napi_is_typedarray(self.env, self.value, &mut is_typed);
            if !is_typed || sys::napi_get_typedarray_info(self.env, self.value, &mut kind, &mut len, &mut data, ptr::null_mut(), &mut offset) != sys::Status::napi_ok {
                return None;
            }
        }
        Some((kind, len, data as *const u8))
    }

    /// A copy of the elements when the value is a typed array of element type `want`.
    fn copy_typed<T: Copy>(&self, want: sys::napi_typedarray_type) -> Option<Vec<T>> {
        let (kind, len, data) = self.typed_array()?;
        if kind != want {
            return None;
        }
        if len == 0 {
            return Some(Vec::new());
        }
        // SAFETY: N-API reports `len` elements of T at `data` (already past the byte offset),
        // alive while the call runs; read_unaligned-free because typed arrays are aligned to T.
        Some(unsafe { std::slice::from_raw_parts(data as *const T, len) }.to_vec())
    }
}

impl JsArg for NapiArg {
    #[inline]
    fn number(&self) -> Option<f64> {
        let mut x = 0.0;
        // SAFETY: as above.
        (unsafe { sys::napi_get_value_double(self.env, self.value, &mut x) } == sys::Status::napi_ok).then_some(x)
    }

    #[inline]
    fn boolean(&self) -> Option<bool> {
        let mut b = false;
        // SAFETY: as above.
        (unsafe { sys::napi_get_value_bool(self.env, self.value, &mut b) } == sys::Status::napi_ok).then_some(b)
    }

    fn string(&self) -> Option<String> {
        let mut len = 0usize;
        // SAFETY: as above; the first call asks for the length, the second fills len + 1 bytes
        // (N-API writes a terminating NUL).
        unsafe {
            if sys::napi_get_value_string_utf8(self.env, self.value, ptr::null_mut(), 0, &mut len) != sys::Status::napi_ok {
                return None;
            }
            let mut buf = vec![0u8; len + 1];
            sys::napi_get_value_string_utf8(self.env, self.value, buf.as_mut_ptr().cast(), len + 1, &mut len);
            buf.truncate(len);
            String::from_utf8(buf).ok()
        }
    }

    fn is_nullish(&self) -> bool {
        matches!(self.type_of(), sys::ValueType::napi_undefined | sys::ValueType::napi_null)
    }

    fn elements(&self) -> Option<Vec<Self>> {
        let (mut is_array, mut len) = (false, 0u32);
        // SAFETY: as above.
        unsafe {
            sys::napi_is_array(self.env, self.value, &mut is_array);
            if !is_array || sys::napi_get_array_length(self.env, self.value, &mut len) != sys::Status::napi_ok {
                return None;
            }
            (0..len)
                .map(|i| {
                    let mut item = ptr::null_mut();
                    (sys::napi_get_element(self.env, self.value, i, &mut item) == sys::Status::napi_ok).then_some(NapiArg { env: self.env, value: item })
                })
                .collect()
        }
    }

    fn field(&self, name: &str) -> Option<Self> {
        if self.type_of() != sys::ValueType::napi_object {
            return None;
        }
        // The NUL-terminated name on the stack: groups are read on every optimizer step.
        let mut key = [0u8; 64];
        if name.len() >= key.len() || name.contains('\0') {
            return None;
        }
        key[..name.len()].copy_from_slice(name.as_bytes());
        let mut item = ptr::null_mut();
        // SAFETY: as above; a getter that throws leaves an exception pending, reported as a
        // missing field and then thrown over by the entry's own error.
        (unsafe { sys::napi_get_named_property(self.env, self.value, key.as_ptr().cast(), &mut item) } == sys::Status::napi_ok).then_some(NapiArg { env: self.env, value: item })
    }

    fn f32s(&self) -> Option<Vec<f32>> {
        self.copy_typed(sys::TypedarrayType::float32_array)
    }
    fn i32s(&self) -> Option<Vec<i32>> {
        self.copy_typed(sys::TypedarrayType::int32_array)
    }
    fn u8s(&self) -> Option<Vec<u8>> {
        self.copy_typed(sys::TypedarrayType::uint8_array)
    }
    fn i8s(&self) -> Option<Vec<i8>> {
        self.copy_typed(sys::TypedarrayType::int8_array)
    }

    fn describe(&self) -> String {
        match self.type_of() {
            sys::ValueType::napi_number => format!("{}", self.number().unwrap_or(f64::NAN)),
            sys::ValueType::napi_undefined => "undefined".into(),
            sys::ValueType::napi_null => "null".into(),
            sys::ValueType::napi_boolean => "a boolean".into(),
            sys::ValueType::napi_string => "a string".into(),
            sys::ValueType::napi_function => "a function".into(),
            sys::ValueType::napi_object => match self.typed_array() {
                Some((kind, _, _)) => typed_array_name(kind).into(),
                None if self.elements().is_some() => "an array".into(),
                None => "an object".into(),
            },
            _ => "a value of another type".into(),
        }
    }
}

/// How errors name a typed array (the same words as bindings/wasm/src/js_value.rs).
fn typed_array_name(kind: sys::napi_typedarray_type) -> &'static str {
    match kind {
        sys::TypedarrayType::int8_array => "an Int8Array",
        sys::TypedarrayType::uint8_array => "a Uint8Array",
        sys::TypedarrayType::uint8_clamped_array => "a Uint8ClampedArray",
        sys::TypedarrayType::int16_array => "an Int16Array",
        sys::TypedarrayType::uint16_array => "a Uint16Array",
        sys::TypedarrayType::int32_array => "an Int32Array",
        sys::TypedarrayType::uint32_array => "a Uint32Array",
        sys::TypedarrayType::float32_array => "a Float32Array",
        sys::TypedarrayType::float64_array => "a Float64Array",
        _ => "a typed array of another type",
    }
}

/// A Rust result that converts to a JS value (null after throwing when that fails).
pub trait ToJs {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value;
}

impl ToJs for u32 {
    #[inline]
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

impl ToJs for () {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        let mut v = ptr::null_mut();
        sys::napi_get_undefined(env, &mut v);
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

/// Handles and numbers come back as a plain JS Array.
unsafe fn js_array(env: sys::napi_env, items: impl ExactSizeIterator<Item = f64>) -> sys::napi_value {
    let mut array = ptr::null_mut();
    sys::napi_create_array_with_length(env, items.len(), &mut array);
    for (i, x) in items.enumerate() {
        sys::napi_set_element(env, array, i as u32, x.to_js(env));
    }
    array
}

impl ToJs for Vec<u32> {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        js_array(env, self.into_iter().map(f64::from))
    }
}

impl ToJs for Vec<f64> {
    unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
        js_array(env, self.into_iter())
    }
}

/// Tensor contents, copied into an ArrayBuffer that V8 owns: an external buffer (napi-rs's
/// Float32Array::new) is only freed by a finalizer that runs when the event loop turns, so a
/// synchronous loop of reads grew without bound (5,000 reads of 256 KB: 1.3 GB).
unsafe fn typed_array<T>(env: sys::napi_env, items: &[T], kind: sys::napi_typedarray_type) -> sys::napi_value {
    let bytes = std::mem::size_of_val(items);
    let (mut data, mut buffer, mut array) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    if sys::napi_create_arraybuffer(env, bytes, &mut data, &mut buffer) != sys::Status::napi_ok {
        return crate::fast::throw(env, false, format!("data: cannot allocate {bytes} bytes for the readback"));
    }
    if bytes > 0 {
        ptr::copy_nonoverlapping(items.as_ptr().cast::<u8>(), data.cast::<u8>(), bytes);
    }
    sys::napi_create_typedarray(env, kind, items.len(), buffer, 0, &mut array);
    array
}

macro_rules! typed_results {
    ($($elem:ty => $kind:ident,)*) => {$(
        impl ToJs for Vec<$elem> {
            unsafe fn to_js(self, env: sys::napi_env) -> sys::napi_value {
                typed_array(env, &self, sys::TypedarrayType::$kind)
            }
        }
    )*};
}

typed_results! {
    f32 => float32_array,
    i32 => int32_array,
    u8 => uint8_array,
    i8 => int8_array,
}
