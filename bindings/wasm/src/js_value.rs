//! wasm-bindgen's `JsValue` as the kinds of the shared table (crates/kiln-boundary) read it: the
//! arguments that are not plain numbers (lists, strings, typed arrays, groups) cross as a
//! `JsValue` and are checked in Rust, with the same words as the native addon
//! (bindings/node/src/napi_value.rs). wasm-bindgen's own `Vec<f64>` or `String` parameters would
//! throw their own errors, or worse, write a non-string into the heap as if it were one.

use js_sys::{Array, Float32Array, Float64Array, Int16Array, Int32Array, Int8Array, Reflect, Uint16Array, Uint32Array, Uint8Array, Uint8ClampedArray};
use kiln_boundary::js::JsArg;
use wasm_bindgen::{JsCast, JsValue};

/// A JS value as the kinds read it (a newtype: the trait and `JsValue` both live in other crates).
pub struct Js(pub JsValue);

impl std::ops::Deref for Js {
    type Target = JsValue;
    fn deref(&self) -> &JsValue {
        &self.0
    }
}

impl JsArg for Js {
    fn number(&self) -> Option<f64> {
        self.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn string(&self) -> Option<String> {
        self.as_string()
    }
    fn is_nullish(&self) -> bool {
        self.is_undefined() || self.is_null()
    }
    fn elements(&self) -> Option<Vec<Self>> {
        Array::is_array(self).then(|| self.unchecked_ref::<Array>().iter().map(Js).collect())
    }
    fn field(&self, name: &str) -> Option<Self> {
        if !self.is_object() {
            return None;
        }
        Reflect::get(self, &JsValue::from_str(name)).ok().map(Js)
    }
    fn f32s(&self) -> Option<Vec<f32>> {
        self.dyn_ref::<Float32Array>().map(Float32Array::to_vec)
    }
    fn i32s(&self) -> Option<Vec<i32>> {
        self.dyn_ref::<Int32Array>().map(Int32Array::to_vec)
    }
    fn u8s(&self) -> Option<Vec<u8>> {
        self.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
    }
    fn i8s(&self) -> Option<Vec<i8>> {
        self.dyn_ref::<Int8Array>().map(Int8Array::to_vec)
    }
    fn describe(&self) -> String {
        if let Some(x) = self.as_f64() {
            return format!("{x}");
        }
        let kind = if self.is_undefined() {
            "undefined"
        } else if self.is_null() {
            "null"
        } else if self.as_bool().is_some() {
            "a boolean"
        } else if self.is_string() {
            "a string"
        } else if self.is_function() {
            "a function"
        } else if Array::is_array(self) {
            "an array"
        } else if self.is_instance_of::<Int8Array>() {
            "an Int8Array"
        } else if self.is_instance_of::<Uint8Array>() {
            "a Uint8Array"
        } else if self.is_instance_of::<Uint8ClampedArray>() {
            "a Uint8ClampedArray"
        } else if self.is_instance_of::<Int16Array>() {
            "an Int16Array"
        } else if self.is_instance_of::<Uint16Array>() {
            "a Uint16Array"
        } else if self.is_instance_of::<Int32Array>() {
            "an Int32Array"
        } else if self.is_instance_of::<Uint32Array>() {
            "a Uint32Array"
        } else if self.is_instance_of::<Float32Array>() {
            "a Float32Array"
        } else if self.is_instance_of::<Float64Array>() {
            "a Float64Array"
        } else if self.is_object() {
            "an object"
        } else {
            "a value of another type"
        };
        kind.to_string()
    }
}
