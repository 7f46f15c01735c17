//! The quantized layers' CPU kernels: weight rows expanded into float tiles (rows.rs) for the
//! weight-only ops, and the W8A8 int8 x int8 products (w8a8.rs on panels.rs and int8_gemm.rs).
//! layers.rs and codec.rs take the tensors `Cpu`'s trait methods receive to these kernels.

pub(crate) mod codec;
pub mod int8_gemm;
pub(crate) mod layers;
pub(crate) mod linear;
pub(crate) mod panels;
pub(crate) mod rows;
pub(crate) mod w8a8;
