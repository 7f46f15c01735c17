//! The gradient-ready hook (GradMeta::set_grad_ready_hook): backward calls it once per leaf, with
//! the leaf's final accumulated gradient, as soon as the last contribution is added -- before the
//! layers nearer the input are differentiated. Data-parallel training all-reduces a bucket from it
//! while backward still runs, so "as soon as" and "final" are what these tests pin down.
use kiln_core::autograd::{self, GradReadyHook};
use kiln_core::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use kiln_core::Tensor;
use std::sync::{Arc, Mutex};

fn param(values: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(values, shape).unwrap().set_requires_grad(true).unwrap()
}

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * scale).collect()
}

/// sum(relu(x·w1 + b1)·w2): two layers, so w2's gradient is final before w1's is computed.
struct TwoLayers {
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
}

impl TwoLayers {
    fn new() -> TwoLayers {
        TwoLayers {
            x: Tensor::from_vec(ramp(6, 0.3), &[2, 3]).unwrap(),
            w1: param(ramp(12, 0.2), &[3, 4]),
            b1: param(ramp(4, 0.1), &[4]),
            w2: param(ramp(4, 0.25), &[4, 1]),
        }
    }

    fn loss(&self) -> Tensor {
        let h = ops::binary(BinaryOp::Add, &ops::matmul(&self.x, &self.w1, false, false).unwrap(), &self.b1).unwrap();
        let h = ops::unary(UnaryOp::Relu, &h, 0.0).unwrap();
        let y = ops::matmul(&h, &self.w2, false, false).unwrap();
        ops::reduce(ReduceOp::Sum, &y, &[], false, 0).unwrap()
    }

    fn leaves(&self) -> [(&'static str, &Tensor); 3] {
        [("w1", &self.w1), ("b1", &self.b1), ("w2", &self.w2)]
    }
}

type Log = Arc<Mutex<Vec<(&'static str, Vec<f32>)>>>;

fn log_into(log: &Log, name: &'static str) -> GradReadyHook {
    let log = log.clone();
    Arc::new(move |g: &Tensor| log.lock().unwrap().push((name, g.to_vec::<f32>().unwrap())))
}

#[test]
fn each_leaf_is_reported_once_with_its_final_gradient_last_layer_first() {
    let net = TwoLayers::new();
    let log: Log = Arc::default();
    for (name, t) in net.leaves() {
        t.grad_meta().unwrap().set_grad_ready_hook(Some(log_into(&log, name)));
    }
    // While w2's hook runs, w1's gradient must not exist yet: the hook really runs mid-backward.
    let w1 = net.w1.clone();
    let w1_grad_when_w2_ready: Arc<Mutex<Option<bool>>> = Arc::default();
    let seen = w1_grad_when_w2_ready.clone();
    let w2_log = log_into(&log, "w2");
    net.w2.grad_meta().unwrap().set_grad_ready_hook(Some(Arc::new(move |g: &Tensor| {
        *seen.lock().unwrap() = Some(w1.grad().is_some());
        w2_log(g);
    })));

    autograd::backward(&net.loss(), None).unwrap();

    let log = log.lock().unwrap();
    let order: Vec<&str> = log.iter().map(|(n, _)| *n).collect();
    assert_eq!(order.len(), 3, "one call per leaf, got {order:?}");
    assert_eq!(order[0], "w2", "the last layer's weight is final first, got {order:?}");
    assert_eq!(*w1_grad_when_w2_ready.lock().unwrap(), Some(false));
    for (name, t) in net.leaves() {
        let reported = &log.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(reported, &t.grad().unwrap().to_vec::<f32>().unwrap(), "{name}: the hook saw the final gradient");
    }
}

#[test]
fn hooks_do_not_change_the_gradients_and_accumulate_across_passes() {
    let plain = TwoLayers::new();
    autograd::backward(&plain.loss(), None).unwrap();
    autograd::backward(&plain.loss(), None).unwrap();

    let hooked = TwoLayers::new();
    let log: Log = Arc::default();
    for (name, t) in hooked.leaves() {
        t.grad_meta().unwrap().set_grad_ready_hook(Some(log_into(&log, name)));
    }
    autograd::backward(&hooked.loss(), None).unwrap();
    autograd::backward(&hooked.loss(), None).unwrap();

    for ((name, a), (_, b)) in plain.leaves().into_iter().zip(hooked.leaves()) {
        let (a, b) = (a.grad().unwrap().to_vec::<f32>().unwrap(), b.grad().unwrap().to_vec::<f32>().unwrap());
        assert_eq!(a, b, "{name}: bit-identical with and without hooks");
        // The second pass reports the sum of both passes (what grad() holds after it).
        let last = log.lock().unwrap().iter().rev().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(last, b);
    }
    assert_eq!(log.lock().unwrap().len(), 6);
}

#[test]
fn a_leaf_used_twice_is_reported_after_both_uses() {
    // loss = sum(w * w + w): three edges into w; d loss/dw = 2w + 1.
    let w = param(vec![0.5, -1.5, 2.0], &[3]);
    let calls: Arc<Mutex<Vec<Vec<f32>>>> = Arc::default();
    let sink = calls.clone();
    w.grad_meta().unwrap().set_grad_ready_hook(Some(Arc::new(move |g: &Tensor| sink.lock().unwrap().push(g.to_vec::<f32>().unwrap()))));
    let square = ops::binary(BinaryOp::Mul, &w, &w).unwrap();
    let loss = ops::reduce(ReduceOp::Sum, &ops::binary(BinaryOp::Add, &square, &w).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&loss, None).unwrap();
    assert_eq!(*calls.lock().unwrap(), vec![vec![2.0, -2.0, 5.0]]);
}

#[test]
fn removing_the_hook_stops_the_calls() {
    let net = TwoLayers::new();
    let log: Log = Arc::default();
    net.w2.grad_meta().unwrap().set_grad_ready_hook(Some(log_into(&log, "w2")));
    net.w2.grad_meta().unwrap().set_grad_ready_hook(None);
    autograd::backward(&net.loss(), None).unwrap();
    assert!(log.lock().unwrap().is_empty());
    assert!(net.w2.grad().is_some());
}
