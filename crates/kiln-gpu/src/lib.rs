//! kiln-gpu: Kiln's GPU device. Tensors live in wgpu storage buffers; every op is a WGSL compute
//! kernel generated from the same op tables kiln-core uses on the CPU, and checked against
//! kiln-core's results in tests/gpu/.
//!
//! Development runs on lavapipe (Mesa's CPU Vulkan driver), which proves correctness, not speed.
//! Nothing here is wired into kiln-core's Tensor or the bindings yet: see /work/helpers/gpu-notes.md
//! (the design note) for how device-resident tensors join the shared op suite.

pub(crate) mod checks;
pub mod device;
pub mod error;
pub mod kernels;
pub mod pool;
pub mod tensor;

pub use device::GpuDevice;
/// The wgpu version kiln-gpu is built on, for callers that name its types (backends, limits).
pub use wgpu;
pub use pool::PoolStats;
pub use tensor::GpuTensor;
