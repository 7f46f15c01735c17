//! Tensor data as typed arrays: each kind takes exactly its typed array (a Float64Array or a
//! plain array is refused, not converted), copied once into memory the tensor then owns.

use super::{wrong_kind, Kind};
use crate::js::JsArg;
use kiln_core::Result;

macro_rules! typed_array_kind {
    ($($(#[$doc:meta])* $kind:ident: $elem:ty = $ts:literal via $read:ident;)*) => {$(
        $(#[$doc])*
        pub struct $kind;
        impl Kind for $kind {
            type Value = Vec<$elem>;
            const TS: &'static str = $ts;
            const EXPECTED: &'static str = concat!("a ", $ts);
            fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<$elem>> {
                v.$read().ok_or_else(|| wrong_kind::<Self>(entry, arg, &v.describe()))
            }
        }
    )*};
}

typed_array_kind! {
    F32Data: f32 = "Float32Array" via f32s;
    I32Data: i32 = "Int32Array" via i32s;
    /// Booleans as bytes (any non-zero byte is true).
    BoolData: u8 = "Uint8Array" via u8s;
    I8Data: i8 = "Int8Array" via i8s;
}
