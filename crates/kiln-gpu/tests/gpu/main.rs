//! kiln-gpu's kernels against kiln-core's CPU results. One test binary (one device, one kernel
//! cache) for speed; every test skips with a message when the machine has no GPU adapter.
//! Run: `cargo test --release -p kiln-gpu` (lavapipe: `apt install mesa-vulkan-drivers libvulkan1`).

mod common;

mod adam;
mod backend;
mod device;
mod elementwise;
mod matmul;
mod reduce;
mod softmax;
// CNN family (conv, pooling, batch norm)
mod cnn;
mod backend_cnn;
// Transformer and RNN family.
mod attention;
mod recurrent;
mod backend_sequence;
// Indexing, creation, losses, optimizers and graph ops.
mod graph;
mod index;
mod loss;
mod optim;
mod backend_indexing;
// Quantized layers (no GPU kernels: refused).
mod backend_quant;
