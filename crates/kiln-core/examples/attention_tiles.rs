//! Chooses the attention kernels' block sizes: times the fused forward and forward+backward for a
//! few tile sizes on one thread (the best of many short runs, so a busy machine disturbs it less),
//! next to the same attention composed from matmul and softmax (which materializes the T×T scores).
//! One head of 64, causal off. `RAYON_NUM_THREADS=1 cargo run --release -p kiln-core --example attention_tiles`
use kiln_core::autograd;
use kiln_core::ops::attention::{attention, AttentionOptions, Tiles};
use kiln_core::ops::{self, matmul, softmax};
use std::time::Instant;

fn best_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let (b, h, d) = (1, 1, 64);
    println!("threads {}", rayon::current_num_threads());
    println!("{:>5} {:>10} {:>16} {:>18}", "T", "tiles", "forward GFLOP/s", "fwd+bwd GFLOP/s");
    for t in [256, 1024] {
        let q = ops::randn(&[b, h, t, d], 0.0, 1.0, Some(1)).unwrap();
        let k = ops::randn(&[b, h, t, d], 0.0, 1.0, Some(2)).unwrap();
        let v = ops::randn(&[b, h, t, d], 0.0, 1.0, Some(3)).unwrap();
        // QKᵀ and PV: 2 products of 2·T²·D flops; the backward adds 5 more (dQ's pass recomputes
        // QKᵀ and dP), counted as the usual 2.5x of the forward for a fused attention.
        let flops = 4.0 * (b * h * t * t * d) as f64;
        let runs = if t > 512 { 20 } else { 100 };
        let tiles = [(32, 64), (64, 64), (64, 128), (128, 64), (128, 128), (32, 256)];
        for (tq, tk) in tiles {
            let options = AttentionOptions { tiles: Tiles { query: tq, key: tk }, ..Default::default() };
            let fwd = best_seconds(runs, || drop(attention(&q, &k, &v, None, &options).unwrap()));
            let (ql, kl, vl) = (q.set_requires_grad(true).unwrap(), k.set_requires_grad(true).unwrap(), v.set_requires_grad(true).unwrap());
            let both = best_seconds(runs / 2, || {
                let out = attention(&ql, &kl, &vl, None, &options).unwrap();
                autograd::backward(&out, Some(&v)).unwrap();
            });
            println!("{t:>5} {:>10} {:>16.1} {:>18.1}", format!("{tq}x{tk}"), flops / fwd / 1e9, 3.5 * flops / both / 1e9);
        }
        let composed = best_seconds(runs, || {
            let s = matmul(&q, &k, false, true).unwrap();
            let p = softmax(&ops::binary(ops::BinaryOp::Mul, &s, &kiln_core::Tensor::scalar_f32(0.125)).unwrap(), -1, false).unwrap();
            drop(matmul(&p, &v, false, false).unwrap());
        });
        println!("{t:>5} {:>10} {:>16.1}", "composed", flops / composed / 1e9);
    }
    let square = 64;
    let a = vec![1.0f32; square * square];
    let mut c = vec![0.0f32; square * square];
    let g = best_seconds(2000, || unsafe {
        gemm::gemm(square, square, square, c.as_mut_ptr(), 1, square as isize, true, a.as_ptr(), 1, square as isize, a.as_ptr(), 1, square as isize, 1.0, 1.0, false, false, false, gemm::Parallelism::None);
    });
    println!("gemm crate 64x64x64 on one thread: {:.1} GFLOP/s", 2.0 * (square as f64).powi(3) / g / 1e9);
}
