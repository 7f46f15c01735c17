//! The TypeScript type of each Rust type an entry returns. Each binding converts these types to
//! JS values (bindings/node/src/fast.rs `ToJs`, bindings/wasm/src/entries.rs `WasmReturn`).

pub trait Returned {
    const TS: &'static str;
}

macro_rules! returned {
    ($($rust:ty => $ts:literal,)*) => {$(
        impl Returned for $rust {
            const TS: &'static str = $ts;
        }
    )*};
}

returned! {
    u32 => "Handle",
    f64 => "number",
    bool => "boolean",
    String => "string",
    () => "void",
    // Several new tensors (split, quantizeInt8).
    Vec<u32> => "Handle[]",
    // Numbers as a JS Array: a shape, or handles with -1 for "none" (gradients).
    Vec<f64> => "number[]",
    // Tensor contents, copied into a typed array JS owns.
    Vec<f32> => "Float32Array",
    Vec<i32> => "Int32Array",
    Vec<u8> => "Uint8Array",
    Vec<i8> => "Int8Array",
}
