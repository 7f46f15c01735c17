//! Alone in its own test binary: it reads the process-wide live-byte counter, which tests
//! running on other threads would disturb.
use kiln_core::autograd;
use kiln_core::ops::{self, ReduceOp, UnaryOp};

fn rand(shape: &[usize], seed: u64) -> kiln_core::Tensor {
    ops::randn(shape, 0.0, 1.0, Some(seed)).unwrap()
}

#[test]
fn backward_frees_saved_tensors() {
    let (_, bytes_before) = kiln_core::storage::live_memory();
    let w = rand(&[64, 64], 40).set_requires_grad(true).unwrap();
    let x = rand(&[32, 64], 41);
    let l = ops::reduce(ReduceOp::Sum, &ops::unary(UnaryOp::Tanh, &ops::matmul(&x, &w, false, false).unwrap(), 0.0).unwrap(), &[], false, 0).unwrap();
    autograd::backward(&l, None).unwrap();
    drop(x);
    // What remains: w, its gradient, and the loss value; the saved activations are gone.
    let (_, bytes_after) = kiln_core::storage::live_memory();
    let expected = 2 * 64 * 64 * 4 + 4;
    assert!(bytes_after - bytes_before <= expected, "{} bytes still live, expected {expected}", bytes_after - bytes_before);
}
