//! The shared entry table (crates/kiln-boundary, `for_each_entry!`) expanded into wasm-bindgen
//! exports. Every argument crosses as an f64 and is checked by its kind: wasm-bindgen's own u32
//! and bool parameters would silently wrap 2^32 + 1 to the handle 1, cut 2.5 to 2 and turn any
//! string into `false`. A boolean arrives as the number JS makes of it (true -> 1), so a flag
//! accepts true/false (and 0/1); anything else is an Error naming the entry and the argument.

use crate::{js_error, Result};
use kiln_boundary::kinds::Kind;
use wasm_bindgen::prelude::*;

macro_rules! wasm_entries {
    // `tt` fragments: wasm-bindgen's attribute parser needs the bare string literal.
    ($($js:tt => $name:ident($($arg:ident: $kind:ident),*) -> $ret:tt;)*) => {
        $(
            #[wasm_bindgen(js_name = $js)]
            #[allow(clippy::too_many_arguments)]
            pub fn $name($($arg: f64),*) -> Result<$ret> {
                let run = || -> kiln_core::Result<$ret> {
                    $( let $arg = <kiln_boundary::kinds::$kind as Kind>::from_number($js, stringify!($arg), $arg)?; )*
                    kiln_boundary::entries::$name($($arg),*)
                };
                run().map_err(|e| js_error(kiln_registry::name_entry(e, $js)))
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
