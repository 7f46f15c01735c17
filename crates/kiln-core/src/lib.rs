//! kiln-core: tensors, the op set and the CPU kernels behind Kiln. The bindings (N-API, WASM)
//! are thin layers over the functions re-exported here.

pub mod args;
pub mod autograd;
pub mod dtype;
pub mod error;
pub mod layout;
pub mod math;
pub mod optim;
pub mod ops;
pub mod parallel;
pub mod random;
pub mod simd;
pub mod storage;
pub mod tensor;

pub use dtype::DType;
pub use error::{KilnError, Result};
pub use tensor::Tensor;
