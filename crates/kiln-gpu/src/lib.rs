//! kiln-gpu: Kiln's GPU device. Tensors live in wgpu storage buffers; every op is a WGSL compute
//! kernel generated from the same op tables kiln-core uses on the CPU, and checked against
//! kiln-core's results in tests/gpu/.
//!
//! Development runs on lavapipe (Mesa's CPU Vulkan driver), which proves correctness, not speed.
//! `GpuBackend` (backend/) is how kiln-core's tensors reach these kernels: it implements
//! kiln-core's `Device` trait (see docs/gpu.md).

pub mod backend;
pub(crate) mod checks;
pub mod device;
pub mod error;
pub mod kernels;
pub mod platform;
pub mod pool;
pub mod tensor;

pub use backend::GpuBackend;
pub use device::GpuDevice;
/// The wgpu version kiln-gpu is built on, for callers that name its types (backends, limits).
pub use wgpu;
pub use pool::PoolStats;
pub use tensor::GpuTensor;
