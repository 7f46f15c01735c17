//! The indexing, loss, reduction, optimizer and graph families through kiln-core's ops on
//! tensors moved to the GPU: one differentiable computation using every wired op, run on both
//! devices — values, gradients and optimizer updates agree, and the GPU run reads nothing back
//! until asked. Bad indices surface at the next read, naming the op.

use crate::common::{randn, randu, vals};
use kiln_core::device::{to_device, Device};
use kiln_core::ops::{self, BinaryOp, ReduceOp, Reduction, SegmentReduce, Sections};
use kiln_core::optim::{self, GradTransform, Rule};
use kiln_core::{autograd, DType, Tensor};
use kiln_gpu::GpuBackend;
use std::sync::{Arc, Mutex, OnceLock};

/// A backend of this file's own: its readback counter and index-error flag see only these tests,
/// which take turns.
fn backend() -> Option<Arc<dyn Device>> {
    static B: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    B.get_or_init(|| GpuBackend::open().ok()).clone().map(|b| b as Arc<dyn Device>)
}
static SERIAL: Mutex<()> = Mutex::new(());

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

fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
    }
}

fn ints(v: Vec<i32>) -> Tensor {
    let n = v.len();
    Tensor::from_vec(v, &[n]).unwrap()
}

#[test]
fn graph_classifier_step_matches_cpu_without_readbacks() {
    gpu_backend!(dev);
    let (nodes, feat, classes, edges) = (7usize, 4usize, 3usize, 15usize);
    let table = randn(&[10, feat], 1);
    let node_ids = ints(vec![3, 1, 4, 1, 5, 9, 2]);
    let src = ints((0..edges).map(|e| ((e * 3 + 1) % nodes) as i32).collect());
    let dst = ints((0..edges).map(|e| ((e * 5) % nodes) as i32).collect());
    let edge_w = randu(&[edges], 0.5, 1.5, 2);
    let w_out = randn(&[2 * feat + 2, classes], 3);
    let groups = ints(vec![0, 0, 1, 1, 1, 2, 2]);
    let targets = ints(vec![2, 0, 1]);
    let class_w = randu(&[classes], 0.5, 2.0, 4);

    let run = |on: Option<&Arc<dyn Device>>| {
        let put = |t: &Tensor| to_device(t, on).unwrap();
        let params: Vec<Tensor> = [&table, &edge_w, &w_out].iter().map(|t| put(t).set_requires_grad(true).unwrap()).collect();
        let (ids, src, dst, groups, targets, class_w) = (put(&node_ids), put(&src), put(&dst), put(&groups), put(&targets), put(&class_w));
        let before = dev.readbacks();
        let h = ops::gather(&params[0], &ids, 0).unwrap();
        let m = ops::spmm(&h, &src, &dst, Some(&params[1]), nodes).unwrap();
        let both = ops::concat(&[h.clone(), m], 1).unwrap();
        let padded = ops::pad(&both, &[(0, 0), (1, 1)], 0.5).unwrap();
        let pooled_mean = ops::segment_reduce(&padded, &groups, 3, SegmentReduce::Mean).unwrap();
        let pooled_max = ops::segment_reduce(&padded, &groups, 3, SegmentReduce::Max).unwrap();
        let pooled = ops::binary(BinaryOp::Add, &pooled_mean, &pooled_max).unwrap();
        let logits = ops::matmul(&pooled, &params[2], false, false).unwrap();
        let ce = ops::cross_entropy(&logits, &targets, Some(&class_w), 0.1, Reduction::Mean).unwrap();
        let spread = ops::reduce(ReduceOp::Variance, &logits, &[1], false, 1).unwrap();
        let lse = ops::reduce(ReduceOp::LogSumExp, &logits, &[], false, 0).unwrap();
        let extra = ops::binary(BinaryOp::Mul, &ops::binary(BinaryOp::Add, &ops::reduce(ReduceOp::Mean, &spread, &[], false, 0).unwrap(), &lse).unwrap(), &Tensor::scalar_f32(0.01)).unwrap();
        let loss = ops::binary(BinaryOp::Add, &ce, &extra).unwrap();
        autograd::backward(&loss, None).unwrap();
        let argmax = ops::reduce(ReduceOp::ArgMax, &logits, &[1], false, 0).unwrap();
        let onehot = ops::one_hot(&targets, classes, 1.0, 0.0).unwrap();
        let parts = ops::split(&ops::stack(&[onehot.clone(), onehot], 0).unwrap(), Sections::Count(2), 0).unwrap();
        // Each rule on one parameter, two steps.
        let t = GradTransform { scale: 0.9, clip_value: 0.5, weight_decay: 0.01 };
        let rules = [
            Rule::Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, nesterov: true, first_step: true },
            Rule::RmsProp { lr: 0.01, alpha: 0.9, eps: 1e-8 },
            Rule::AdaGrad { lr: 0.1, eps: 1e-10 },
        ];
        let mut updated = Vec::new();
        for (p, rule) in params.iter().zip(rules) {
            let mut p2 = p.detach();
            let mut state: Vec<Tensor> = (0..rule.state_count()).map(|_| put(&ops::zeros(p.shape(), DType::F32).unwrap())).collect();
            for _ in 0..2 {
                optim::step(rule, t, &mut p2, &p.grad().unwrap(), &mut state).unwrap();
            }
            updated.push(p2);
        }
        if on.is_some() {
            assert_eq!(dev.readbacks(), before, "the GPU step read something back");
            assert!(loss.device().is_some() && params[0].grad().unwrap().device().is_some() && parts[1].device().is_some());
        }
        let argmax = to_device(&argmax, None).unwrap().to_vec::<i32>().unwrap();
        let grads: Vec<Vec<f32>> = params.iter().map(|p| down(&p.grad().unwrap())).collect();
        (down(&loss), argmax, down(&parts[1]), grads, updated.iter().map(down).collect::<Vec<_>>())
    };
    let cpu = run(None);
    let gpu = run(Some(&dev));
    close("loss", &gpu.0, &cpu.0, 1e-5);
    assert_eq!(gpu.1, cpu.1, "argmax");
    assert_eq!(gpu.2, cpu.2, "oneHot / stack / split");
    for (k, (g, c)) in gpu.3.iter().zip(&cpu.3).enumerate() {
        close(&format!("gradient {k}"), g, c, 1e-4);
    }
    for (k, (g, c)) in gpu.4.iter().zip(&cpu.4).enumerate() {
        close(&format!("updated {k}"), g, c, 1e-5);
    }
}

#[test]
fn bad_indices_through_core_ops_fail_at_the_next_read() {
    gpu_backend!(dev);
    let x = to_device(&randn(&[5, 2], 1), Some(&dev)).unwrap();
    let bad = to_device(&ints(vec![1, 5]), Some(&dev)).unwrap();
    let y = ops::gather(&x, &bad, 0).unwrap();
    let e = to_device(&y, None).unwrap_err().to_string();
    assert!(e.starts_with("gather: index 5 is out of range [0, 5) for axis 0 of shape [5, 2]"), "{e}");
    let logits = to_device(&randn(&[2, 3], 2), Some(&dev)).unwrap();
    let loss = ops::cross_entropy(&logits, &to_device(&ints(vec![0, -2]), Some(&dev)).unwrap(), None, 0.0, Reduction::Sum).unwrap();
    let e = dev.synchronize().unwrap_err().to_string();
    assert!(e.starts_with("crossEntropy: target -2 at row 1 is out of range for 3 classes"), "{e}");
    // The flag is clear again: reading the (clamped) loss works.
    assert_eq!(down(&loss).len(), 1);
}
