//! The one error type of kiln-core. Every message starts with the op's name and says which
//! shapes/dtypes it got and what it expected, because that is what reaches the user as a JS Error.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct KilnError {
    pub op: String,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, KilnError>;

impl KilnError {
    pub fn new(op: &str, message: impl Into<String>) -> Self {
        KilnError { op: op.to_string(), message: message.into() }
    }
}

impl fmt::Display for KilnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)
    }
}

impl std::error::Error for KilnError {}

/// `bail!(op, "format", args)` returns a KilnError from the current function.
#[macro_export]
macro_rules! bail {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::error::KilnError::new($op, format!($($arg)*)))
    };
}

/// Formats a shape the way users write it: `[2, 3]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{:?}", shape)
}
