//! Graphs of a million nodes are freed and walked without recursion (autograd/teardown.rs and
//! run_backward's iterative order). The tests run on cargo's test threads, whose 2 MiB stacks a
//! recursive drop overflowed at a few tens of thousands of nodes.
use kiln_core::autograd;
use kiln_core::ops::{self, BinaryOp, UnaryOp};
use kiln_core::Tensor;

const NODES: usize = 1_000_000;

fn scalar_param(v: f32) -> Tensor {
    Tensor::scalar_f32(v).set_requires_grad(true).unwrap()
}

/// The classic: a running loss summed for logging without detach().
fn running_sum(w: &Tensor, steps: usize) -> Tensor {
    let mut total = ops::binary(BinaryOp::Mul, w, &Tensor::scalar_f32(0.0)).unwrap();
    for _ in 0..steps {
        total = ops::binary(BinaryOp::Add, &total, w).unwrap();
    }
    total
}

#[test]
fn a_million_node_chain_is_dropped_without_recursion() {
    let w = scalar_param(1.0);
    let total = running_sum(&w, NODES);
    drop(total);
    // The parameter survives its graph, and new graphs still work.
    let again = running_sum(&w, 3);
    assert_eq!(again.to_vec::<f32>().unwrap(), vec![3.0]);
}

#[test]
fn backward_through_a_million_node_chain() {
    let w = scalar_param(0.5);
    let total = running_sum(&w, NODES);
    autograd::backward(&total, None).unwrap();
    // d(sum of NODES copies of w)/dw = NODES, exact in float32.
    assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![NODES as f32]);
    drop(total);
}

/// A hand-unrolled recurrence h <- tanh(w·h + x), three nodes per step, against forward-mode
/// differentiation of the same recurrence in f64 (an independent computation of dh/dw).
#[test]
fn backward_through_a_deep_unrolled_recurrence() {
    let steps = NODES / 3;
    let (w0, x0) = (0.7f32, 0.1f32);
    let w = scalar_param(w0);
    let x = Tensor::scalar_f32(x0);
    let mut h = ops::binary(BinaryOp::Mul, &w, &Tensor::scalar_f32(0.0)).unwrap();
    for _ in 0..steps {
        let wh = ops::binary(BinaryOp::Mul, &w, &h).unwrap();
        h = ops::unary(UnaryOp::Tanh, &ops::binary(BinaryOp::Add, &wh, &x).unwrap(), 0.0).unwrap();
    }
    autograd::backward(&h, None).unwrap();

    let (w64, x64) = (w0 as f64, x0 as f64);
    let (mut h64, mut dh) = (0.0f64, 0.0f64);
    for _ in 0..steps {
        let next = (w64 * h64 + x64).tanh();
        dh = (1.0 - next * next) * (h64 + w64 * dh);
        h64 = next;
    }
    let got = w.grad().unwrap().to_vec::<f32>().unwrap()[0] as f64;
    assert!((h.to_vec::<f32>().unwrap()[0] as f64 - h64).abs() < 1e-4, "forward value drifted");
    assert!((got - dh).abs() < 1e-3 * dh.abs().max(1.0), "dh/dw: autograd {got}, forward mode {dh}");
}
