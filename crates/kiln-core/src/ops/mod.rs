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
// Recurrent layers (RNN, LSTM, GRU): one op per layer and direction over a whole sequence.
pub mod recurrent;
// convolution (CNN family)
pub mod conv;

pub use binary::{binary, where_, BinaryOp};
pub use creation::{arange, eye, full, ones, randn, randu, zeros};
pub use loss::{cross_entropy, Reduction};
pub use matmul::matmul;
// The fully connected layer's product with its bias (x·Wᵀ + b): a GEMM that starts from the bias.
pub mod linear;
pub use linear::{linear, linear_activated};
pub use reduce::{reduce, ReduceOp};
pub use shape::{cast, concat, gather, one_hot, pad, scatter_add, split, stack, Sections};
pub use softmax::softmax;
pub use unary::{unary, UnaryOp};
// graph neural networks: message passing over an edge list
pub mod graph;
pub use graph::{segment_reduce, spmm, SegmentReduce};
// Recurrent layers.
pub use recurrent::{recurrent, Cell, Weights};
// convolution (CNN family)
pub use conv::{conv2d, conv2d_fused, conv_transpose2d, Activation, ConvParams, Epilogue};
// Several convolutions of one input concatenated on channels, written in place (fire modules).
pub mod conv_concat;
pub use conv_concat::{conv2d_concat, ConvBranch};
// Convolution in the channel-blocked layout NCHWc, and its reorders (inference graphs).
pub mod conv_nchwc;
pub use conv_nchwc::{avg_pool2d_nchwc, conv2d_nchwc, conv2d_nchwc_concat, from_nchwc, max_pool2d_nchwc, pack_nchwc_filters, to_nchwc};

// CNN pooling and batch normalization (pool.rs, batch_norm.rs).
pub mod batch_norm;
pub mod pool;
pub use batch_norm::{batch_norm, BatchNorm};
// Layer normalization (Transformer family): one fused kernel forward, a composed backward.
pub mod layer_norm;
pub use layer_norm::layer_norm;
pub use pool::{avg_pool2d, max_pool2d, Pool2d};
// attention (Transformer family)
pub mod attention;
pub use attention::{attention, scaled_dot_product_attention, AttentionOptions};

/// Names of the table-driven ops per family, in code order (code = index).
pub fn op_table() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("unary", UnaryOp::ALL.iter().map(|o| o.name()).collect()),
        ("binary", BinaryOp::ALL.iter().map(|o| o.name()).collect()),
        ("reduce", ReduceOp::ALL.iter().map(|o| o.name()).collect()),
        // graph neural networks
        ("segmentReduce", SegmentReduce::ALL.iter().map(|o| o.name()).collect()),
        // Recurrent layers: the cell codes of `recurrent`.
        ("recurrent", Cell::ALL.iter().map(|c| c.name()).collect()),
    ]
}
// Weight-only quantization (int8 per channel, int4 per block) and linear and conv layers on it.
pub mod quant;
pub use quant::{conv2d_q4, conv2d_q8, conv2d_w8a8, dequantize_int4, dequantize_int8, linear_q4, linear_q8, linear_w8a8, quantize_int4, quantize_int8, INT4_BLOCK};
