//! The parameter types of the ops, below both the ops (which validate and build them) and the
//! devices (whose kernels take them): conv geometry, pooling plans, attention options, recurrent
//! cells and weights, batch-norm and optimizer settings, and the tables of the unary, binary and
//! reduce ops. A file here imports only the tensor core (tensor, dtype, error, math), never
//! `ops` or `device`: that is what keeps kiln-core free of import circles
//! (tests/import_cycles.rs checks it).

pub mod attention;
pub mod batch_norm;
pub mod binary;
pub mod conv;
pub mod graph;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod quant;
pub mod recurrent;
pub mod reduce;
pub mod shape;
pub mod unary;
