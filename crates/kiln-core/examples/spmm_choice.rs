//! Message passing two ways, forward + backward: the fused `spmm` kernel against the same
//! computation from primitives (gather the source rows, scale by the edge weight, scatterAdd into
//! the destinations), which materializes an [E, F] message tensor and its gradient.
//! `cargo run --release -p kiln-core --example spmm_choice`
use kiln_core::ops::{self, BinaryOp, ReduceOp};
use kiln_core::{autograd, Tensor};
use std::time::Instant;

fn graph(nodes: usize, edges: usize, seed: u64) -> (Tensor, Tensor) {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) % nodes as u64) as i32
    };
    let src: Vec<i32> = (0..edges).map(|_| next()).collect();
    let dst: Vec<i32> = (0..edges).map(|_| next()).collect();
    (Tensor::from_vec(src, &[edges]).unwrap(), Tensor::from_vec(dst, &[edges]).unwrap())
}

fn step(fused: bool, x: &Tensor, w: &Tensor, src: &Tensor, dst: &Tensor, nodes: usize) {
    let x = x.set_requires_grad(true).unwrap();
    let w = w.set_requires_grad(true).unwrap();
    let out = if fused {
        ops::spmm(&x, src, dst, Some(&w), nodes).unwrap()
    } else {
        let messages = ops::binary(BinaryOp::Mul, &ops::gather(&x, src, 0).unwrap(), &w.unsqueeze(1).unwrap()).unwrap();
        let zeros = ops::zeros(x.shape(), kiln_core::DType::F32).unwrap();
        ops::scatter_add(&zeros, dst, &messages, 0).unwrap()
    };
    let loss = ops::reduce(ReduceOp::Sum, &out, &[], false, 0).unwrap();
    autograd::backward(&loss, None).unwrap();
    std::hint::black_box((x.grad(), w.grad()));
}

fn main() {
    // Cora's size (2,708 nodes, 10,556 edges + 2,708 self loops) at GCN's hidden width and at
    // its input width, then a larger graph.
    for &(nodes, edges, features) in &[(2708, 13_264, 16), (2708, 13_264, 1433), (100_000, 1_000_000, 64)] {
        let (src, dst) = graph(nodes, edges, 7);
        let x = ops::randn(&[nodes, features], 0.0, 1.0, Some(1)).unwrap();
        let w = ops::randn(&[edges], 0.0, 1.0, Some(2)).unwrap();
        let reps = (200_000_000 / (edges * features)).clamp(3, 200);
        let mut times = [0.0f64; 2];
        for (i, fused) in [true, false].into_iter().enumerate() {
            step(fused, &x, &w, &src, &dst, nodes);
            let t = Instant::now();
            for _ in 0..reps {
                step(fused, &x, &w, &src, &dst, nodes);
            }
            times[i] = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        }
        println!(
            "N={nodes} E={edges} F={features}: fused spmm {:.3} ms, gather+mul+scatterAdd {:.3} ms (forward+backward; fused {:.1}x faster)",
            times[0], times[1], times[1] / times[0]
        );
    }
}
