//! The binary ops: one table row per op gives its name, its output element type and its scalar
//! formula, as params/unary.rs. The CPU device compiles each into broadcasting loops through
//! `BinaryOp::visit`; the GPU has its own WGSL rows.

use crate::storage::Element;

pub trait BinaryKernel {
    type Out: Element + Default;
    fn apply(a: f32, b: f32) -> Self::Out;
}

/// A loop that is generic over the op's kernel (see `BinaryOp::visit`).
pub trait BinaryVisitor {
    type Out;
    fn visit<K: BinaryKernel>(self) -> Self::Out;
}

macro_rules! binary_ops {
    ($($variant:ident $name:literal -> $out:ty |$a:ident, $b:ident| $body:expr;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum BinaryOp { $($variant),* }

        impl BinaryOp {
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(BinaryOp::$variant => $name),* }
            }

            /// Calls `visitor` with this op's kernel type: how a device's loop gets the formula
            /// compiled into it (a generic loop per op, no call per element).
            pub fn visit<V: BinaryVisitor>(self, visitor: V) -> V::Out {
                match self {
                    $(BinaryOp::$variant => {
                        struct K;
                        impl BinaryKernel for K {
                            type Out = $out;
                            #[inline(always)]
                            fn apply($a: f32, $b: f32) -> $out { $body }
                        }
                        visitor.visit::<K>()
                    })*
                }
            }
        }
    };
}

binary_ops! {
    Add "add" -> f32 |a, b| a + b;
    Sub "sub" -> f32 |a, b| a - b;
    Mul "mul" -> f32 |a, b| a * b;
    Div "div" -> f32 |a, b| a / b;
    Pow "pow" -> f32 |a, b| a.powf(b);
    // Written as selects so that a NaN on either side propagates (f32::max would drop it).
    Maximum "maximum" -> f32 |a, b| if a > b || a.is_nan() { a } else { b };
    Minimum "minimum" -> f32 |a, b| if a < b || a.is_nan() { a } else { b };
    Equal "equal" -> u8 |a, b| (a == b) as u8;
    NotEqual "notEqual" -> u8 |a, b| (a != b) as u8;
    Less "less" -> u8 |a, b| (a < b) as u8;
    LessEqual "lessEqual" -> u8 |a, b| (a <= b) as u8;
    Greater "greater" -> u8 |a, b| (a > b) as u8;
    GreaterEqual "greaterEqual" -> u8 |a, b| (a >= b) as u8;
}

impl BinaryOp {
    pub fn from_name(name: &str) -> Option<BinaryOp> {
        BinaryOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual)
    }
}
