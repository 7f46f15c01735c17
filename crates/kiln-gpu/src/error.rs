//! GPU failures as kiln-core's KilnError, so they reach the user the same way as any other op's
//! error. wgpu reports most failures asynchronously (error scopes, the device-lost callback);
//! GpuDevice turns them into these before an op returns.

use kiln_core::KilnError;

/// Why there is no device, and what to install. Shown when no adapter is found.
pub fn no_adapter(detail: &str) -> KilnError {
    KilnError::new(
        "gpu",
        format!(
            "no GPU adapter found ({detail}). Kiln's GPU backend needs a Vulkan, Metal or DX12 driver. \
             On Debian/Ubuntu without a GPU, install the software Vulkan driver: \
             `apt install mesa-vulkan-drivers libvulkan1` (lavapipe; correct but CPU-speed). \
             Set WGPU_BACKEND=vulkan to force the Vulkan backend."
        ),
    )
}

/// A wgpu error raised while running `op`.
pub fn from_wgpu(op: &str, err: &wgpu::Error) -> KilnError {
    match err {
        wgpu::Error::OutOfMemory { .. } => KilnError::new(op, "the GPU is out of memory (free tensors, use smaller batches, or call trim() on the device)"),
        wgpu::Error::Validation { description, .. } => KilnError::new(op, format!("GPU validation error: {description}")),
        wgpu::Error::Internal { description, .. } => KilnError::new(op, format!("GPU internal error: {description}")),
    }
}

/// The device is gone (driver reset, destroy()); every later op reports this.
pub fn device_lost(op: &str, reason: &str) -> KilnError {
    KilnError::new(op, format!("the GPU device was lost ({reason}); create a new device and upload the tensors again"))
}
