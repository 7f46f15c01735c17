//! GFLOP per CPU-second of each convolution pass (forward, input gradient, weight gradient) on
//! bench/conv-passes.mjs's conv2d-a and conv2d-b (and cnn-train's second convolution), without the addon: the same figures as
//! `npm run bench:conv`'s native rows, quicker to rebuild while working on a kernel. CPU time is
//! the sum over the process's threads (support/cpu_time.rs), so other processes sharing
//! the machine barely move it. The environment switch KILN_CONV_PATH=im2col is
//! read by the kernels as usual.
//! `cargo run --release -p kiln-core --example conv_passes [-- ids]`
use kiln_core::ops::{self, ConvParams};
use kiln_core::{autograd, Tensor};

#[path = "support/cpu_time.rs"]
mod cpu_time;

/// Best CPU seconds per call over 3 rounds of about 0.4 s of wall time.
fn cpu_per_call(f: impl FnMut()) -> f64 {
    cpu_time::per_call(0.4, f).0
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    println!("GFLOP per CPU-second ({} threads): forward / input grad / forward+weight grad / weight grad", kiln_core::parallel::num_threads());
    // cnn-c2: bench/workloads.mjs cnn-train's second convolution (3x3 'same', 32 -> 64 channels
    // at 14x14, batch 64).
    for (id, n, c, h, o) in [("conv2d-a", 32, 1, 28, 32), ("conv2d-b", 8, 64, 32, 64), ("cnn-c2", 64, 32, 14, 64)] {
        if !only.is_empty() && !only.iter().any(|w| id.contains(w.as_str())) {
            continue;
        }
        let gflop = 2.0 * (n * o * h * h * c * 9) as f64 / 1e9;
        let x = ops::randn(&[n, c, h, h], 0.0, 1.0, Some(7)).unwrap();
        let w = ops::randn(&[o, c, 3, 3], 0.0, 0.1, Some(8)).unwrap();
        let dy = ops::randn(&[n, o, h, h], 0.0, 1.0, Some(9)).unwrap();
        let p = ConvParams { padding: [1; 4], ..ConvParams::default() };
        let forward = cpu_per_call(|| drop(ops::conv2d(&x, &w, None, &p).unwrap()));
        let input_grad = cpu_per_call(|| drop(ops::conv_transpose2d(&dy, &w, None, &p, [0, 0]).unwrap()));
        let with_weight_grad = cpu_per_call(|| {
            let leaf: Tensor = w.set_requires_grad(true).unwrap();
            let out = ops::conv2d(&x, &leaf, None, &p).unwrap();
            autograd::backward(&out, Some(&dy)).unwrap();
        });
        let weight_grad = (with_weight_grad - forward).max(1e-9);
        println!(
            "{id}: {:.1} / {:.1} / {:.1} / {:.1}",
            gflop / forward,
            gflop / input_grad,
            2.0 * gflop / with_weight_grad,
            gflop / weight_grad
        );
    }
}
