//! A JavaScript value as a binding sees it. Each binding implements `JsArg` once (raw N-API in
//! bindings/node/src/napi_value.rs, wasm-bindgen's `JsValue` in bindings/wasm/src/js_value.rs);
//! the kinds (kinds/) read every argument through it, so a list, a string, typed-array data or
//! a structured option group is checked, and its errors are worded, in one place for both.
//!
//! Every method answers `None` when the value is not of the type asked for; the kind then
//! reports "must be <expected>, got <describe()>".

pub trait JsArg: Sized {
    fn number(&self) -> Option<f64>;
    fn boolean(&self) -> Option<bool>;
    fn string(&self) -> Option<String>;
    /// `undefined` or `null`: an optional argument left out.
    fn is_nullish(&self) -> bool;
    /// The elements of a JS Array (not of a typed array).
    fn elements(&self) -> Option<Vec<Self>>;
    /// Property `name` of an object (`undefined` when it lacks one); None when not an object.
    fn field(&self, name: &str) -> Option<Self>;
    fn f32s(&self) -> Option<Vec<f32>>;
    fn i32s(&self) -> Option<Vec<i32>>;
    fn u8s(&self) -> Option<Vec<u8>>;
    fn i8s(&self) -> Option<Vec<i8>>;
    /// The value as an error shows it: a number as Rust prints an f64 (as the kinds show the
    /// numbers they refuse), else its type ("a string", "an array", "a Float64Array", "undefined").
    fn describe(&self) -> String;
}

/// A value made of plain Rust data, for the tests of the kinds (no JS engine needed).
#[cfg(test)]
#[derive(Clone, Debug)]
pub enum Fake {
    Undefined,
    Num(f64),
    Bool(bool),
    Str(&'static str),
    List(Vec<Fake>),
    Object(Vec<(&'static str, Fake)>),
    F32(Vec<f32>),
}

#[cfg(test)]
impl JsArg for Fake {
    fn number(&self) -> Option<f64> {
        if let Fake::Num(v) = self { Some(*v) } else { None }
    }
    fn boolean(&self) -> Option<bool> {
        if let Fake::Bool(v) = self { Some(*v) } else { None }
    }
    fn string(&self) -> Option<String> {
        if let Fake::Str(v) = self { Some(v.to_string()) } else { None }
    }
    fn is_nullish(&self) -> bool {
        matches!(self, Fake::Undefined)
    }
    fn elements(&self) -> Option<Vec<Self>> {
        if let Fake::List(v) = self { Some(v.clone()) } else { None }
    }
    fn field(&self, name: &str) -> Option<Self> {
        match self {
            Fake::Object(fields) => Some(fields.iter().find(|(n, _)| *n == name).map_or(Fake::Undefined, |(_, v)| v.clone())),
            Fake::List(_) | Fake::F32(_) => Some(Fake::Undefined),
            _ => None,
        }
    }
    fn f32s(&self) -> Option<Vec<f32>> {
        if let Fake::F32(v) = self { Some(v.clone()) } else { None }
    }
    fn i32s(&self) -> Option<Vec<i32>> {
        None
    }
    fn u8s(&self) -> Option<Vec<u8>> {
        None
    }
    fn i8s(&self) -> Option<Vec<i8>> {
        None
    }
    fn describe(&self) -> String {
        match self {
            Fake::Undefined => "undefined".into(),
            Fake::Num(v) => v.to_string(),
            Fake::Bool(_) => "a boolean".into(),
            Fake::Str(_) => "a string".into(),
            Fake::List(_) => "an array".into(),
            Fake::Object(_) => "an object".into(),
            Fake::F32(_) => "a Float32Array".into(),
        }
    }
}
