//! kiln-core's ops on tensors that live on the GPU (GpuBackend as a kiln-core Device): the same
//! calls as on the CPU, results compared with the CPU's, gradients through kiln-core's autograd,
//! and no readback until a value is asked for.

use crate::common::{randn, vals};
use kiln_core::device::{to_device, Device};
use kiln_core::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use kiln_core::optim::{self, GradTransform, Rule};
use kiln_core::{autograd, Tensor};
use kiln_gpu::GpuBackend;
use std::sync::{Arc, OnceLock};

fn backend() -> Option<Arc<dyn Device>> {
    static B: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    B.get_or_init(|| GpuBackend::open().ok()).clone().map(|b| b as Arc<dyn Device>)
}

/// The readback counter is per device: these tests take turns so one's downloads do not land
/// in another's count.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `gpu_backend!(dev);` declares `dev` (and holds this module's turn), or skips the test.
macro_rules! gpu_backend {
    ($dev:ident) => {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let $dev = match backend() {
            Some(b) => b,
            None => {
                eprintln!("skipped: no GPU adapter");
                return;
            }
        };
    };
}

fn down(t: &Tensor) -> Vec<f32> {
    vals(&to_device(t, None).unwrap())
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

/// One MLP training step (matmul, bias broadcast, relu, logSoftmax, mean, backward, Adam) on both
/// devices: losses, gradients and updated weights agree, and the GPU step reads nothing back.
#[test]
fn mlp_step_matches_cpu_without_readbacks() {
    gpu_backend!(dev);
    let x = randn(&[16, 20], 1);
    let w1 = randn(&[20, 32], 2);
    let b1 = randn(&[32], 3);
    let w2 = randn(&[32, 10], 4);
    let onehot = ops::one_hot(&Tensor::from_vec((0..16).map(|i| (i % 10) as i32).collect::<Vec<_>>(), &[16]).unwrap(), 10, 1.0, 0.0).unwrap();
    let step = |on: Option<&Arc<dyn Device>>| {
        let put = |t: &Tensor| to_device(t, on).unwrap();
        let params: Vec<Tensor> = [&w1, &b1, &w2].iter().map(|t| put(t).set_requires_grad(true).unwrap()).collect();
        let (x, onehot) = (put(&x), put(&onehot));
        let before = dev.readbacks();
        let h = ops::unary(UnaryOp::Relu, &ops::binary(BinaryOp::Add, &ops::matmul(&x, &params[0], false, false).unwrap(), &params[1]).unwrap(), 0.0).unwrap();
        let logp = ops::softmax(&ops::matmul(&h, &params[2], false, false).unwrap(), -1, true).unwrap();
        let picked = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Mul, &logp, &onehot).unwrap(), &[1], false, 0).unwrap();
        let loss = ops::binary(BinaryOp::Mul, &ops::reduce(ReduceOp::Mean, &picked, &[], false, 0).unwrap(), &Tensor::scalar_f32(-1.0)).unwrap();
        autograd::backward(&loss, None).unwrap();
        let mut updated = Vec::new();
        for p in &params {
            let mut p2 = p.detach();
            let mut state = vec![put(&ops::zeros(p.shape(), kiln_core::DType::F32).unwrap()), put(&ops::zeros(p.shape(), kiln_core::DType::F32).unwrap())];
            let rule = Rule::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled_decay: 0.0, step: 1 };
            let t = GradTransform { scale: 1.0, clip_value: f32::INFINITY, weight_decay: 0.0 };
            optim::step(rule, t, &mut p2, &p.grad().unwrap(), &mut state).unwrap();
            updated.push(p2);
        }
        if on.is_some() {
            assert_eq!(dev.readbacks(), before, "a training step on the GPU read something back");
            assert!(loss.device().is_some() && params[0].grad().unwrap().device().is_some());
        }
        let grads: Vec<Vec<f32>> = params.iter().map(|p| down(&p.grad().unwrap())).collect();
        (down(&loss), grads, updated.iter().map(down).collect::<Vec<_>>())
    };
    let (cpu_loss, cpu_grads, cpu_new) = step(None);
    let (gpu_loss, gpu_grads, gpu_new) = step(Some(&dev));
    close(&gpu_loss, &cpu_loss, 1e-5);
    for (g, c) in gpu_grads.iter().zip(&cpu_grads) {
        close(g, c, 1e-4);
    }
    for (g, c) in gpu_new.iter().zip(&cpu_new) {
        close(g, c, 1e-5);
    }
}

/// A CPU tensor larger than one element cannot be mixed with GPU tensors: a clear error.
#[test]
fn mixing_devices_is_an_error() {
    gpu_backend!(dev);
    let a = to_device(&randn(&[3], 1), Some(&dev)).unwrap();
    let err = ops::binary(BinaryOp::Add, &a, &randn(&[3], 2)).err().unwrap();
    assert!(err.to_string().contains("add") && err.to_string().contains(".to('gpu')"), "{err}");
    // A one-element CPU constant is fine (uploaded by the device).
    let y = ops::binary(BinaryOp::Mul, &a, &Tensor::scalar_f32(2.0)).unwrap();
    close(&down(&y), &vals(&randn(&[3], 1)).iter().map(|v| v * 2.0).collect::<Vec<_>>(), 1e-6);
}

/// Gradients flow back across `to`: a loss computed on the GPU from a CPU leaf gives the leaf a
/// CPU gradient.
#[test]
fn to_device_is_differentiable() {
    gpu_backend!(dev);
    let x = randn(&[4, 3], 5).set_requires_grad(true).unwrap();
    let y = ops::reduce(ReduceOp::Sum, &ops::unary(UnaryOp::Tanh, &to_device(&x, Some(&dev)).unwrap(), 0.0).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&y, None).unwrap();
    let g = x.grad().unwrap();
    assert!(g.device().is_none());
    let want: Vec<f32> = vals(&randn(&[4, 3], 5)).iter().map(|v| 1.0 - v.tanh() * v.tanh()).collect();
    close(&vals(&g), &want, 1e-5);
}
