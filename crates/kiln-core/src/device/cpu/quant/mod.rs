//! The quantized layers' CPU kernels: weight rows expanded into float tiles (rows.rs), into the
//! direct conv kernel's tiles (tile_filters.rs) or dotted directly (linear.rs; int4 from the
//! re-laid runs of nibbles.rs) for the weight-only ops, and
//! the W8A8 int8 x int8 products (w8a8.rs on panels.rs and int8_gemm.rs). What a kernel needs
//! beyond a weight's stored bytes is built once and kept with the weight (packed.rs, nibbles.rs,
//! tile_filters.rs).
//! layers.rs and codec.rs take the tensors `Cpu`'s trait methods receive to these kernels.

pub(crate) mod codec;
pub mod int8_gemm;
pub(crate) mod layers;
pub(crate) mod linear;
pub(crate) mod nibbles;
pub(crate) mod packed;
pub(crate) mod panels;
pub(crate) mod rows;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(target_arch = "x86_64")]
pub(crate) mod tile_filters;
pub(crate) mod w8a8;
