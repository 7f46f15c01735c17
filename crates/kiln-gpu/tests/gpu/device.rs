//! The device itself: the buffer pool stays flat over a loop, kernels compile once, and failures
//! (no adapter, oversize tensors, a lost device) are errors, not panics.

use crate::common::*;
use kiln_core::ops::{BinaryOp, ReduceOp, UnaryOp};
use kiln_gpu::kernels::{elementwise as ew, matmul::matmul, reduce::reduce, softmax::softmax};
use kiln_gpu::{GpuDevice, GpuTensor};

/// One "training step" worth of ops whose intermediates are all dropped at the end.
fn step(dev: &GpuDevice, i: usize) {
    let x = up(dev, &randn(&[32, 48], i as u64));
    let w = up(dev, &randn(&[48, 16 + i % 3], 99));
    let h = ew::unary(dev, UnaryOp::Relu, &matmul(dev, &x, &w, false, false).unwrap(), 0.0).unwrap();
    let p = softmax(dev, &h, -1, true).unwrap();
    let s = reduce(dev, ReduceOp::Mean, &ew::binary(dev, BinaryOp::Mul, &p, &h).unwrap(), &[], false).unwrap();
    assert!(down(dev, &s)[0].is_finite());
}

#[test]
fn buffer_pool_stays_flat_over_a_loop() {
    let dev = gpu!();
    // The device is shared with tests running in parallel, so count only what this loop adds: a
    // private device keeps the numbers clean.
    let dev = &GpuDevice::new().unwrap_or_else(|_| panic!("a second device on '{}'", dev.adapter_name()));
    for i in 0..3 {
        step(dev, i);
    }
    let warm = dev.pool_stats();
    assert_eq!(warm.live_buffers, 0, "every buffer went back to the pool: {warm:?}");
    for i in 3..60 {
        step(dev, i);
    }
    let after = dev.pool_stats();
    assert_eq!(after.created, warm.created, "no new buffers after warm-up: {warm:?} -> {after:?}");
    assert_eq!((after.live_buffers, after.free_bytes), (0, warm.free_bytes));
    dev.trim();
    assert_eq!(dev.pool_stats().free_buffers, 0);
}

#[test]
fn kernels_compile_once_per_device() {
    let dev = gpu!();
    let dev = &GpuDevice::new().unwrap_or_else(|_| panic!("a second device on '{}'", dev.adapter_name()));
    let x = up(dev, &randn(&[10], 1));
    ew::unary(dev, UnaryOp::Exp, &x, 0.0).unwrap();
    let compiled = dev.pipeline_count();
    let y = ew::unary(dev, UnaryOp::Exp, &up(dev, &randn(&[1000], 2)), 0.0).unwrap();
    assert_eq!(dev.pipeline_count(), compiled, "a second exp of another size reuses the kernel");
    ew::unary(dev, UnaryOp::Log, &y, 0.0).unwrap();
    assert_eq!(dev.pipeline_count(), compiled + 1);
}

#[test]
fn oversize_tensor_is_an_error() {
    let dev = gpu!();
    let max = dev.limits().max_storage_buffer_binding_size;
    let elements = (max / 4 + 1) as usize;
    // The size is checked before the device allocates anything (the host copy is 128 MiB here).
    let t = kiln_core::ops::zeros(&[1], kiln_core::DType::F32).unwrap().expand(&[elements]).unwrap();
    let e = GpuTensor::upload(dev, &t).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("exceeds") && e.contains(&max.to_string()), "{e}");
}

#[test]
fn lost_device_reports_errors() {
    let dev = gpu!();
    let lost = GpuDevice::new().unwrap_or_else(|_| panic!("a second device on '{}'", dev.adapter_name()));
    let x = up(&lost, &randn(&[4], 1));
    lost.destroy();
    let e = ew::unary(&lost, UnaryOp::Exp, &x, 0.0).unwrap_err().to_string();
    assert!(e.starts_with("exp:") && e.contains("lost"), "{e}");
    let e = x.download(&lost).unwrap_err().to_string();
    assert!(e.contains("lost"), "{e}");
}

#[cfg(target_os = "linux")]
#[test]
fn no_adapter_says_what_to_install() {
    // Metal is never present on Linux, so this asks for an adapter that cannot exist.
    let e = GpuDevice::with_backends(kiln_gpu::wgpu::Backends::METAL).err().expect("no Metal adapter on Linux").to_string();
    assert!(e.starts_with("gpu: no GPU adapter found") && e.contains("apt install mesa-vulkan-drivers libvulkan1"), "{e}");
}
