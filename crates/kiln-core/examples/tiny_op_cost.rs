//! Measures the Rust-side cost of a tiny op (add of two 4-element tensors), without any binding:
//! the floor under the per-call cost that bench/ reports. `cargo run --release --example tiny_op_cost`
use kiln_core::ops::{binary, BinaryOp};
use kiln_core::Tensor;
use std::time::Instant;

fn main() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]).unwrap();
    let b = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]).unwrap();
    let n = 5_000_000;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(binary(BinaryOp::Add, &a, &b).unwrap());
        }
        println!("add [4]+[4]: {:.0} ns/op", t.elapsed().as_nanos() as f64 / n as f64);
    }
}
