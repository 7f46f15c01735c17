//! The op set. Each family lives in its own module; every op's name here is the name TypeScript
//! uses, and `op_table()` hands the bindings the name -> code maps so the two never drift.

pub mod binary;
pub mod creation;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod unary;

pub use binary::{binary, where_, BinaryOp};
pub use creation::{arange, eye, full, ones, randn, randu, zeros};
pub use loss::{cross_entropy, Reduction};
pub use matmul::matmul;
pub use reduce::{reduce, ReduceOp};
pub use shape::{cast, concat, gather, one_hot, pad, scatter_add, split, stack, Sections};
pub use softmax::softmax;
pub use unary::{unary, UnaryOp};
// attention (Transformer family)
pub mod attention;
pub use attention::{attention, scaled_dot_product_attention, AttentionOptions};

/// Names of the table-driven ops per family, in code order (code = index).
pub fn op_table() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("unary", UnaryOp::ALL.iter().map(|o| o.name()).collect()),
        ("binary", BinaryOp::ALL.iter().map(|o| o.name()).collect()),
        ("reduce", ReduceOp::ALL.iter().map(|o| o.name()).collect()),
    ]
}
