//! The kinds of argument an entry takes. JavaScript hands every binding a number (or a boolean);
//! a kind turns it into the Rust value the body wants, or into an Error naming the entry and
//! the argument (never a silent truncation: 2.5 is not a count, 2^32 + 1 is not a handle).
//!
//! Each kind also names its TypeScript type, which the test of ts/backends/backend.ts compares
//! with the `Backend` interface (tests/boundary/manifest.test.ts).

use crate::js::JsArg;
use kiln_core::{KilnError, Result};

mod data;
mod groups;
mod lists;
mod names;
pub use data::*;
pub use groups::*;
pub use lists::*;
pub use names::*;

/// How a JS value becomes a Rust argument.
pub trait Kind {
    type Value;
    /// The parameter type in ts/backends/backend.ts.
    const TS: &'static str;
    /// What the error says the argument must be.
    const EXPECTED: &'static str;
    /// May be left out (JS `undefined`): only trailing arguments are.
    const OPTIONAL: bool = false;
    /// For a group (groups.rs): its fields as (JS name, TypeScript type), which the contract test
    /// compares with the interface of that name in backend.ts.
    const FIELDS: &'static [(&'static str, &'static str)] = &[];
    /// Reads and checks the argument; the error names the entry and the argument.
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Self::Value>;
}

/// A kind that crosses as one number. Through wasm-bindgen these arguments are f64 parameters
/// (cheaper than a `JsValue` on every call of the hot entries), so the check takes the number.
pub trait Scalar: Kind {
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<Self::Value>;
}

/// A scalar kind read from a JS value: a number, then the kind's check.
#[inline]
fn read_number<K: Scalar, V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<K::Value> {
    match v.number() {
        Some(x) => K::from_number(entry, arg, x),
        None => Err(wrong_kind::<K>(entry, arg, &v.describe())),
    }
}

/// Implements `Kind::read` of scalar kinds through `read_number`.
macro_rules! scalar_read {
    () => {
        #[inline]
        fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Self::Value> {
            read_number::<Self, V>(entry, arg, v)
        }
    };
}

/// "unary: argument 'x' must be a tensor handle ..., got a string".
pub fn wrong_kind<K: Kind + ?Sized>(entry: &str, arg: &str, got: &str) -> KilnError {
    wrong_value(entry, arg, K::EXPECTED, got)
}

/// `wrong_kind` with the kind's expectation given as text (for `crate::wrong_type`).
pub fn wrong_value(entry: &str, arg: &str, expected: &str, got: &str) -> KilnError {
    KilnError::new(entry, format!("argument '{}' must be {expected}, got {got}", js_name(arg)))
}

/// The JS spelling of a Rust argument name (`transpose_a` -> `transposeA`), for messages.
pub fn js_name(rust: &str) -> String {
    let mut out = String::with_capacity(rust.len());
    let mut upper = false;
    for c in rust.trim_end_matches('_').chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `v` when it is an integer in `range`, else the kind's wrong-value error.
fn integer_in<K: Kind>(entry: &str, arg: &str, v: f64, range: std::ops::RangeInclusive<f64>) -> Result<f64> {
    if v.fract() == 0.0 && range.contains(&v) {
        Ok(v)
    } else {
        Err(wrong_kind::<K>(entry, arg, &v.to_string()))
    }
}

/// A live tensor's handle.
pub struct Handle;
impl Kind for Handle {
    type Value = u32;
    const TS: &'static str = "Handle";
    const EXPECTED: &'static str = "a tensor handle (an integer from 0 to 2^32 - 1)";
    scalar_read!();
}
impl Scalar for Handle {
    #[inline]
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<u32> {
        // The message is built only on failure: this runs on every call of every hot entry.
        kiln_registry::handle(entry, arg, v).map_err(|_| wrong_kind::<Self>(entry, arg, &v.to_string()))
    }
}

/// A handle, or a negative integer (-1) for "no tensor".
pub struct MaybeHandle;
impl Kind for MaybeHandle {
    type Value = Option<u32>;
    const TS: &'static str = "number";
    const EXPECTED: &'static str = "a tensor handle or -1 for none";
    scalar_read!();
}
impl Scalar for MaybeHandle {
    #[inline]
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<Option<u32>> {
        kiln_registry::optional_handle(entry, arg, v).map_err(|_| wrong_kind::<Self>(entry, arg, &v.to_string()))
    }
}

/// A count, size or op code: an integer from 0 to 2^32 - 1.
pub struct Count;
impl Kind for Count {
    type Value = u32;
    const TS: &'static str = "number";
    const EXPECTED: &'static str = "a non-negative integer";
    scalar_read!();
}
impl Scalar for Count {
    #[inline]
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<u32> {
        integer_in::<Self>(entry, arg, v, 0.0..=u32::MAX as f64).map(|v| v as u32)
    }
}

/// An axis or other signed integer (negative axes count from the end).
pub struct Int;
impl Kind for Int {
    type Value = isize;
    const TS: &'static str = "number";
    const EXPECTED: &'static str = "an integer";
    scalar_read!();
}
impl Scalar for Int {
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<isize> {
        // 2^53: beyond it f64 no longer holds every integer, and no axis or size is that large.
        const MAX: f64 = 9007199254740991.0;
        // args::int refuses, on a 32-bit build (WASM), what isize cannot hold (`as isize` would
        // saturate 2^40 to 2^31 - 1, and the op report an axis the caller never passed).
        kiln_core::args::int(entry, integer_in::<Self>(entry, arg, v, -MAX..=MAX)?)
    }
}

/// Any number, NaN and infinities included (the op itself says which values it accepts).
pub struct Number;
impl Kind for Number {
    type Value = f64;
    const TS: &'static str = "number";
    const EXPECTED: &'static str = "a number";
    scalar_read!();
}
impl Scalar for Number {
    fn from_number(_entry: &str, _arg: &str, v: f64) -> Result<f64> {
        Ok(v)
    }
}

/// A seed for the random generators: an integer from 0 to 2^53 - 1 (never cut to an integer).
pub struct Seed;
impl Kind for Seed {
    type Value = u64;
    const TS: &'static str = "number";
    const EXPECTED: &'static str = "a seed (an integer from 0 to 2^53 - 1)";
    scalar_read!();
}
impl Scalar for Seed {
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<u64> {
        integer_in::<Self>(entry, arg, v, 0.0..=9007199254740991.0).map(|v| v as u64)
    }
}

/// A seed, or `undefined` for "draw from the global generator".
pub struct MaybeSeed;
impl Kind for MaybeSeed {
    type Value = Option<u64>;
    const TS: &'static str = "number | undefined";
    const EXPECTED: &'static str = "a seed (an integer from 0 to 2^53 - 1) or undefined";
    const OPTIONAL: bool = true;
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Option<u64>> {
        if v.is_nullish() {
            return Ok(None);
        }
        match v.number() {
            Some(x) => integer_in::<Self>(entry, arg, x, 0.0..=9007199254740991.0).map(|x| Some(x as u64)),
            None => Err(wrong_kind::<Self>(entry, arg, &v.describe())),
        }
    }
}

/// A boolean.
pub struct Flag;
impl Kind for Flag {
    type Value = bool;
    const TS: &'static str = "boolean";
    const EXPECTED: &'static str = "a boolean";
    #[inline]
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<bool> {
        v.boolean().ok_or_else(|| wrong_kind::<Self>(entry, arg, &v.describe()))
    }
}
impl Scalar for Flag {
    /// Through wasm-bindgen a boolean arrives as the number JS makes of it (true -> 1).
    fn from_number(entry: &str, arg: &str, v: f64) -> Result<bool> {
        match v {
            0.0 => Ok(false),
            1.0 => Ok(true),
            _ => Err(wrong_kind::<Self>(entry, arg, &v.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_names_read_as_in_javascript() {
        assert_eq!(js_name("transpose_a"), "transposeA");
        assert_eq!(js_name("where_"), "where");
        assert_eq!(js_name("x"), "x");
    }

    #[test]
    fn counts_refuse_fractions_negatives_and_nan() {
        assert_eq!(Count::from_number("oneHot", "depth", 3.0).unwrap(), 3);
        for bad in [2.5, -1.0, f64::NAN, 2f64.powi(32)] {
            let e = Count::from_number("oneHot", "depth", bad).unwrap_err().to_string();
            assert!(e.starts_with("oneHot: argument 'depth' must be a non-negative integer, got"), "{e}");
        }
    }

    #[test]
    fn flags_take_booleans_or_zero_and_one() {
        use crate::js::Fake;
        assert!(Flag::read("matmul", "transpose_a", &Fake::Bool(true)).unwrap());
        assert!(!Flag::from_number("matmul", "transpose_a", 0.0).unwrap());
        let e = Flag::from_number("matmul", "transpose_a", f64::NAN).unwrap_err().to_string();
        assert_eq!(e, "matmul: argument 'transposeA' must be a boolean, got NaN");
        let e = Handle::read("matmul", "a", &Fake::Bool(true)).unwrap_err().to_string();
        assert!(e.starts_with("matmul: argument 'a' must be a tensor handle"), "{e}");
    }
}
