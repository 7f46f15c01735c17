//! kiln-core: tensors, the op set and the CPU kernels behind Kiln. The bindings (N-API, WASM)
//! are thin layers over the functions re-exported here.

// The threaded WASM build's pool sleeps and wakes with memory.atomic.wait32/notify (wasm_pool.rs);
// their intrinsics are unstable (the build sets RUSTC_BOOTSTRAP for -Zbuild-std anyway).
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod alloc;
pub mod args;
pub mod autograd;
#[cfg(not(target_arch = "wasm32"))]
pub mod cpu_clock;
#[cfg(target_arch = "x86_64")]
pub(crate) mod cpu_cache;
pub mod device;
pub mod dtype;
pub mod error;
pub mod layout;
pub mod math;
pub mod optim;
pub mod params;
pub mod ops;
pub mod parallel;
#[cfg(not(target_arch = "wasm32"))]
pub mod native_pool;
pub mod random;
pub mod simd;
pub mod storage;
pub mod tensor;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub mod wasm_pool;

// The GEMM entry points kept at their old paths (examples and benches call them).
pub use device::cpu::gemm_call;
#[cfg(target_arch = "wasm32")]
pub use device::cpu::gemm_simd128;

pub use dtype::DType;
pub use error::{KilnError, Result};
pub use tensor::Tensor;
