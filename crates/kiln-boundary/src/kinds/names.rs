//! Kinds that cross as a string: a dtype, a device, an optional op name.

use super::{wrong_kind, Kind};
use crate::js::JsArg;
use kiln_core::{args, DType, KilnError, Result};

fn string<K: Kind, V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<String> {
    v.string().ok_or_else(|| wrong_kind::<K>(entry, arg, &v.describe()))
}

/// A dtype by its TypeScript name ('float32', 'int32', 'bool', 'int8').
pub struct DTypeName;
impl Kind for DTypeName {
    type Value = DType;
    const TS: &'static str = "string";
    const EXPECTED: &'static str = "a dtype name (a string)";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<DType> {
        args::dtype(entry, &string::<Self, V>(entry, arg, v)?)
    }
}

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Cpu,
    Gpu,
}

/// A device name: 'cpu' or 'gpu'.
pub struct DeviceName;
impl Kind for DeviceName {
    type Value = Place;
    const TS: &'static str = "string";
    const EXPECTED: &'static str = "a device name ('cpu' or 'gpu')";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Place> {
        match string::<Self, V>(entry, arg, v)?.as_str() {
            "cpu" => Ok(Place::Cpu),
            "gpu" => Ok(Place::Gpu),
            other => Err(KilnError::new(entry, format!("unknown device '{other}' (expected 'cpu' or 'gpu')"))),
        }
    }
}

/// A string that may be left out.
pub struct MaybeText;
impl Kind for MaybeText {
    type Value = Option<String>;
    const TS: &'static str = "string | undefined";
    const EXPECTED: &'static str = "a string or undefined";
    const OPTIONAL: bool = true;
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Option<String>> {
        if v.is_nullish() {
            return Ok(None);
        }
        string::<Self, V>(entry, arg, v).map(Some)
    }
}

/// A string the body checks itself (its errors name the op the user called, as `full`'s dtype).
pub struct Text;
impl Kind for Text {
    type Value = String;
    const TS: &'static str = "string";
    const EXPECTED: &'static str = "a string";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<String> {
        string::<Self, V>(entry, arg, v)
    }
}
