//! Element types. Only f32, i32 and bool have kernels today; the others are named so that
//! files, error messages and the bindings already speak about them.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I32,
    Bool,
    F16,
    BF16,
    I8,
}

impl DType {
    /// The name used in TypeScript and in error messages (tfjs spelling).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::Bool => "bool",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I8 => "int8",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        [DType::F32, DType::I32, DType::Bool, DType::F16, DType::BF16, DType::I8]
            .into_iter()
            .find(|d| d.name() == name)
    }

    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Bool | DType::I8 => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
