//! The CNN family through kiln-core's ops on GPU tensors (GpuBackend as a kiln-core Device): a
//! small CNN's forward and backward (conv2d, batch norm with running statistics, relu, max and
//! average pooling, convTranspose2d) give the CPU's values and gradients, and read nothing back.
//! Tolerance 2e-4 relative (+2e-4 absolute): the whole network's rounding, f32 tree sums on the
//! device against the CPU's f64 batch-norm totals.

use crate::common::{randn, vals};
use kiln_core::device::{to_device, Device};
use kiln_core::ops::{self, BatchNorm, BinaryOp, ConvParams, Pool2d, ReduceOp, UnaryOp};
use kiln_core::{autograd, Tensor};
use kiln_gpu::GpuBackend;
use std::sync::{Arc, Mutex, OnceLock};

/// A device of this module's own, so its readback count is not shared with other test modules.
fn backend() -> Option<Arc<dyn Device>> {
    static B: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    B.get_or_init(|| GpuBackend::open().ok()).clone().map(|b| b as Arc<dyn Device>)
}

static SERIAL: Mutex<()> = Mutex::new(());

fn down(t: &Tensor) -> Vec<f32> {
    vals(&to_device(t, None).unwrap())
}

#[track_caller]
fn close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 2e-4 * (1.0 + y.abs()), "{what} element {i}: GPU {x} vs CPU {y}");
    }
}

/// Loss, gradients of (input, parameters...) and running statistics after one step.
type Step = (Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>);

fn cnn_step(on: Option<&Arc<dyn Device>>, training: bool, dev: &Arc<dyn Device>) -> Step {
    let put = |t: &Tensor| to_device(t, on).unwrap();
    let leaf = |t: Tensor| put(&t).set_requires_grad(true).unwrap();
    let x = leaf(randn(&[2, 3, 9, 8], 1));
    let w1 = leaf(randn(&[6, 3, 3, 3], 2));
    let b1 = leaf(randn(&[6], 3));
    let gamma = leaf(ops::randu(&[6], 0.5, 1.5, Some(4)).unwrap());
    let beta = leaf(randn(&[6], 5));
    let wt = leaf(randn(&[6, 2, 2, 2], 6)); // convTranspose2d, groups 2: [in, out/groups, kh, kw]
    let (mut rm, mut rv) = (put(&randn(&[6], 7)), put(&ops::randu(&[6], 0.5, 2.0, Some(8)).unwrap()));
    let before = dev.readbacks();

    let p1 = ConvParams { padding: [1, 1, 1, 1], ..Default::default() };
    let h = ops::conv2d(&x, &w1, Some(&b1), &p1).unwrap();
    let options = BatchNorm { training, momentum: 0.1, eps: 1e-5 };
    let h = ops::batch_norm(&h, Some(&gamma), Some(&beta), Some((&mut rm, &mut rv)), options).unwrap();
    let h = ops::unary(UnaryOp::Relu, &h, 0.0).unwrap();
    let h = ops::max_pool2d(&h, Pool2d { kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1], dilation: [1, 1] }).unwrap();
    let pt = ConvParams { stride: [2, 2], padding: [0, 1, 1, 0], groups: 2, ..Default::default() };
    let h = ops::conv_transpose2d(&h, &wt, None, &pt, [1, 0]).unwrap();
    let h = ops::avg_pool2d(&h, Pool2d { kernel: [2, 2], stride: [1, 1], padding: [0, 1, 1, 0], dilation: [1, 1] }, false).unwrap();
    // A weighted sum, so every output position has its own gradient.
    let weights = put(&randn(h.shape(), 9));
    let loss = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, &h, &weights).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&loss, None).unwrap();
    if on.is_some() {
        assert_eq!(dev.readbacks(), before, "a CNN step on the GPU read something back");
        assert!(loss.device().is_some() && w1.grad().unwrap().device().is_some() && rm.device().is_some());
    }
    let grads = [&x, &w1, &b1, &gamma, &beta, &wt].iter().map(|t| down(&t.grad().expect("a gradient"))).collect();
    (down(&loss), grads, vec![down(&rm), down(&rv)])
}

#[test]
fn cnn_forward_backward_on_the_gpu_matches_cpu_without_readbacks() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = backend() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    for training in [true, false] {
        let (cpu_loss, cpu_grads, cpu_running) = cnn_step(None, training, &dev);
        let (gpu_loss, gpu_grads, gpu_running) = cnn_step(Some(&dev), training, &dev);
        close(&format!("loss (training={training})"), &gpu_loss, &cpu_loss);
        for (k, name) in ["input", "conv weight", "conv bias", "bn weight", "bn bias", "convTranspose weight"].iter().enumerate() {
            close(&format!("{name} gradient (training={training})"), &gpu_grads[k], &cpu_grads[k]);
        }
        close(&format!("running mean (training={training})"), &gpu_running[0], &cpu_running[0]);
        close(&format!("running var (training={training})"), &gpu_running[1], &cpu_running[1]);
    }
}
