//! Kinds that cross as a JS Array: shapes, axes, plain numbers and tensor handles. Each element
//! is checked; a shape's dimensions cross as 64-bit numbers and one larger than this build can
//! address is refused with the op's own error (kiln-core's args.rs), never cut with `as u32`.

use super::{wrong_kind, Kind, Scalar};
use crate::js::JsArg;
use kiln_core::args;
use kiln_core::Result;

/// The numbers of a JS Array, or the kind's wrong-kind error ("got an array holding a string").
fn numbers<K: Kind, V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<f64>> {
    let items = v.elements().ok_or_else(|| wrong_kind::<K>(entry, arg, &v.describe()))?;
    items
        .iter()
        .map(|item| item.number().ok_or_else(|| wrong_kind::<K>(entry, arg, &format!("an array holding {}", item.describe()))))
        .collect()
}

/// A shape or a list of sizes: non-negative integers, each addressable by this build.
pub struct Dims;
impl Kind for Dims {
    type Value = Vec<usize>;
    const TS: &'static str = "number[]";
    const EXPECTED: &'static str = "an array of sizes (non-negative integers)";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<usize>> {
        args::dims(entry, &numbers::<Self, V>(entry, arg, v)?)
    }
}

/// Axes, offsets or sizes that may be negative (-1: the last axis, or to the end).
pub struct Ints;
impl Kind for Ints {
    type Value = Vec<isize>;
    const TS: &'static str = "number[]";
    const EXPECTED: &'static str = "an array of integers";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<isize>> {
        args::ints(entry, &numbers::<Self, V>(entry, arg, v)?)
    }
}

/// Numbers the body checks itself, because its errors name the op the user called rather than
/// the entry (`full` serves zeros, ones, ...; `reduce` serves sum, mean, ...).
pub struct Numbers;
impl Kind for Numbers {
    type Value = Vec<f64>;
    const TS: &'static str = "number[]";
    const EXPECTED: &'static str = "an array of numbers";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<f64>> {
        numbers::<Self, V>(entry, arg, v)
    }
}

/// Tensor handles, each checked as `Handle` is.
pub struct Handles;
impl Kind for Handles {
    type Value = Vec<u32>;
    const TS: &'static str = "Handle[]";
    const EXPECTED: &'static str = "an array of tensor handles";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<u32>> {
        numbers::<Self, V>(entry, arg, v)?.into_iter().map(|h| super::Handle::from_number(entry, arg, h)).collect()
    }
}

/// The items of a JS Array, each read as `K` (its errors name the argument as the array's).
fn items<L: Kind, K: Kind, V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<K::Value>> {
    let items = v.elements().ok_or_else(|| wrong_kind::<L>(entry, arg, &v.describe()))?;
    items.iter().map(|item| K::read(entry, arg, item)).collect()
}

/// Strings, each checked as `Text` is (conv2dConcat's activation names, '' for none).
pub struct Texts;
impl Kind for Texts {
    type Value = Vec<String>;
    const TS: &'static str = "string[]";
    const EXPECTED: &'static str = "an array of strings";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<String>> {
        items::<Self, super::Text, V>(entry, arg, v)
    }
}

/// Convolution geometries, each checked as `ConvGeometry` is (conv2dConcat's filter sets).
pub struct ConvGeometries;
impl Kind for ConvGeometries {
    type Value = Vec<super::ConvGeometry>;
    const TS: &'static str = "ConvGeometry[]";
    const EXPECTED: &'static str = "an array of convolution geometries";
    fn read<V: JsArg>(entry: &str, arg: &str, v: &V) -> Result<Vec<super::ConvGeometry>> {
        items::<Self, super::ConvGeometry, V>(entry, arg, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::js::Fake::{self, *};

    #[test]
    fn a_list_refuses_what_is_not_an_array_of_numbers() {
        let e = Dims::read("reshape", "shape", &Str("2x2")).unwrap_err().to_string();
        assert_eq!(e, "reshape: argument 'shape' must be an array of sizes (non-negative integers), got a string");
        let e = Handles::read("concat", "tensors", &List(vec![Num(1.0), Str("a")])).unwrap_err().to_string();
        assert_eq!(e, "concat: argument 'tensors' must be an array of tensor handles, got an array holding a string");
    }

    #[test]
    fn dims_cross_whole_and_are_refused_above_what_the_build_addresses() {
        let shape = |v: &[f64]| Fake::List(v.iter().map(|&d| Num(d)).collect());
        assert_eq!(Dims::read("expand", "shape", &shape(&[0.0, 4294967301.0])).unwrap(), vec![0, 4294967301]);
        let e = Dims::read("expand", "shape", &shape(&[2f64.powi(53)])).unwrap_err().to_string();
        assert!(e.starts_with("expand: dimension 9007199254740992 in shape [9007199254740992] is larger than this backend can address"), "{e}");
        assert!(Dims::read("expand", "shape", &shape(&[2.5])).is_err());
        let e = Handles::read("stack", "tensors", &shape(&[4294967297.0])).unwrap_err().to_string();
        assert!(e.starts_with("stack: argument 'tensors' must be a tensor handle"), "{e}");
    }
}
