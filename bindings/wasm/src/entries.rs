//! The shared entry table (crates/kiln-boundary, `for_each_entry!`) expanded into wasm-bindgen
//! exports. Scalar kinds cross as an f64 and are checked by their kind: wasm-bindgen's own u32
//! and bool parameters would silently wrap 2^32 + 1 to the handle 1, cut 2.5 to 2 and turn any
//! string into `false`; an f64 keeps the hot entries cheap. A boolean arrives as the number JS
//! makes of it (true -> 1), so a flag accepts true/false (and 0/1). Every other kind crosses as a
//! `JsValue` and is read by the kind itself (js_value.rs). Anything else is an Error naming the
//! entry and the argument.

use crate::{js_error, Result};
use kiln_boundary::kinds::{self, Kind, Scalar};
use wasm_bindgen::prelude::*;

/// How an argument of a kind crosses into WASM.
pub trait Crossing: Kind {
    type Abi;
    fn take(entry: &str, arg: &str, v: Self::Abi) -> kiln_core::Result<Self::Value>;
}

macro_rules! crossing {
    (numbers: $($scalar:ident),*; values: $($kind:ident),*) => {
        $(impl Crossing for kinds::$scalar {
            type Abi = f64;
            #[inline]
            fn take(entry: &str, arg: &str, v: f64) -> kiln_core::Result<Self::Value> {
                <Self as Scalar>::from_number(entry, arg, v)
            }
        })*
        $(impl Crossing for kinds::$kind {
            type Abi = JsValue;
            fn take(entry: &str, arg: &str, v: JsValue) -> kiln_core::Result<Self::Value> {
                <Self as Kind>::read(entry, arg, &crate::js_value::Js(v))
            }
        })*
    };
}
crossing! {
    numbers: Handle, MaybeHandle, Count, Int, Number, Flag, Seed;
    values: MaybeSeed, Dims, Ints, Numbers, Handles, Texts, ConvGeometries, DTypeName, Text, MaybeText, F32Data, I32Data, BoolData, I8Data, Pair,
        ConvGeometry, MaxPoolWindow, AvgPoolWindow, GradTransform, SgdStepOptions, AdamStepOptions, RmspropStepOptions, AdagradStepOptions, FusedAttentionOptions
}

/// The parameter type of kind `K`.
type Abi<K> = <K as Crossing>::Abi;

/// How a result crosses back: scalars, strings and typed arrays as wasm-bindgen returns them,
/// lists of handles or numbers as a plain JS Array (as the native addon returns them).
pub trait WasmReturn {
    type Js;
    fn into_js(self) -> Self::Js;
}

macro_rules! returned_as_is {
    ($($t:ty),*) => {$(
        impl WasmReturn for $t {
            type Js = $t;
            #[inline]
            fn into_js(self) -> $t {
                self
            }
        }
    )*};
}
returned_as_is!(u32, f64, bool, String, (), Vec<f32>, Vec<i32>, Vec<u8>, Vec<i8>);

impl WasmReturn for Vec<u32> {
    type Js = js_sys::Array;
    fn into_js(self) -> js_sys::Array {
        self.into_iter().map(|h| JsValue::from_f64(h as f64)).collect()
    }
}

impl WasmReturn for Vec<f64> {
    type Js = js_sys::Array;
    fn into_js(self) -> js_sys::Array {
        self.into_iter().map(JsValue::from_f64).collect()
    }
}

/// The JS type an entry returning `T` gives.
type Js<T> = <T as WasmReturn>::Js;

macro_rules! wasm_entries {
    // `tt` fragments: wasm-bindgen's attribute parser needs the bare string literal.
    ($($js:tt => $name:ident($($arg:ident: $kind:ident),*) -> $ret:ty;)*) => {
        $(
            #[wasm_bindgen(js_name = $js)]
            #[allow(clippy::too_many_arguments)]
            pub fn $name($($arg: Abi<kinds::$kind>),*) -> Result<Js<$ret>> {
                let run = || -> kiln_core::Result<$ret> {
                    $( let $arg = <kinds::$kind as Crossing>::take($js, stringify!($arg), $arg)?; )*
                    kiln_boundary::entries::$name($($arg),*)
                };
                run().map(WasmReturn::into_js).map_err(|e| js_error(kiln_registry::name_entry(e, $js)))
            }
        )*
    };
}
kiln_boundary::for_each_entry!(wasm_entries);

/// The shared table's kinds and arities, for the check of ts/backends/backend.ts.
#[wasm_bindgen(js_name = "boundaryManifest")]
pub fn boundary_manifest() -> String {
    kiln_boundary::manifest_json()
}

/// The error for an argument of a table entry given a value of the wrong JavaScript type (see
/// `kiln_boundary::wrong_type`), '' if the entry has no argument `index`. Scalars cross as f64,
/// where JS has already made 2 of "2" and 1 of true, so ts/backends/wasm-guard.ts checks their
/// `typeof` and calls this only when one is wrong: the words are the native addon's.
#[wasm_bindgen(js_name = "wrongType")]
pub fn wrong_type(entry: &str, index: u32, value: JsValue) -> String {
    kiln_boundary::wrong_type(entry, index as usize, &crate::js_value::Js(value)).map_or_else(String::new, |e| e.to_string())
}
