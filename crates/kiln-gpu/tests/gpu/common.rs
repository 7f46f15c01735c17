//! The shared device, the skip rule, test data and comparisons.

use kiln_core::autograd;
use kiln_core::ops;
use kiln_core::Tensor;
use kiln_gpu::{GpuDevice, GpuTensor};
use std::sync::OnceLock;

/// The device every test shares, or None (with one message) when there is no adapter.
pub fn device() -> Option<&'static GpuDevice> {
    static DEVICE: OnceLock<Option<GpuDevice>> = OnceLock::new();
    DEVICE
        .get_or_init(|| match GpuDevice::new() {
            Ok(d) => {
                eprintln!("kiln-gpu tests on adapter '{}'", d.adapter_name());
                Some(d)
            }
            Err(e) => {
                eprintln!("SKIPPING kiln-gpu tests: {e}");
                None
            }
        })
        .as_ref()
}

/// `let dev = gpu!();` at the top of a test: the device, or return (skip) when there is none.
macro_rules! gpu {
    () => {
        match crate::common::device() {
            Some(d) => d,
            None => {
                eprintln!("skipped: no GPU adapter");
                return;
            }
        }
    };
}
pub(crate) use gpu;

/// Normal random values, reproducible by seed.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

/// Uniform random values in [low, high), reproducible by seed.
pub fn randu(shape: &[usize], low: f32, high: f32, seed: u64) -> Tensor {
    ops::randu(shape, low, high, Some(seed)).unwrap()
}

pub fn up(dev: &GpuDevice, t: &Tensor) -> GpuTensor {
    GpuTensor::upload(dev, t).unwrap()
}

pub fn down(dev: &GpuDevice, t: &GpuTensor) -> Vec<f32> {
    t.to_vec_f32(dev).unwrap()
}

pub fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// Largest |got - want| / (atol + rtol |want|) over the elements; <= 1 passes.
pub fn worst(got: &[f32], want: &[f32], atol: f32, rtol: f32) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let r = if g == w { 0.0 } else { (g - w).abs() / (atol + rtol * w.abs()) };
        let r = if r.is_nan() { f32::INFINITY } else { r };
        if r > worst.0 {
            worst = (r, i);
        }
    }
    worst
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    let (r, i) = worst(got, want, atol, rtol);
    assert!(r <= 1.0, "{what}: element {i}: GPU {} vs CPU {} (atol {atol}, rtol {rtol})", got[i], want[i]);
}

/// kiln-core's gradients of sum(f(inputs) * seed) with respect to each input.
pub fn cpu_grads(inputs: &[Tensor], seed: &Tensor, f: impl Fn(&[Tensor]) -> Tensor) -> Vec<Vec<f32>> {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.set_requires_grad(true).unwrap()).collect();
    let out = f(&leaves);
    autograd::backward(&out, Some(seed)).unwrap();
    leaves.iter().map(|l| vals(&l.grad().expect("a gradient"))).collect()
}
