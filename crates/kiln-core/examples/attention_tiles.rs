//! Chooses the attention kernels' block sizes: the fused forward and forward+backward for a few
//! tile sizes, in GFLOP per CPU-second (process CPU time from /proc/self/stat over ~2 s of runs,
//! so a busy shared machine disturbs the comparison less than wall time would), next to the same
//! attention composed from matmul and softmax (which materializes the T×T scores). Batch 1, 4 heads
//! of 64 (d 256), causal off. `cargo run --release -p kiln-core --example attention_tiles`
use kiln_core::autograd;
use kiln_core::ops::attention::{attention, AttentionOptions, Tiles};
use kiln_core::ops::{self, matmul, softmax};
use std::time::Instant;

/// CPU seconds (user + system) of this process so far, from /proc/self/stat (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// CPU seconds per call of `f`, over about 2 s of wall time.
fn cpu_per_call(mut f: impl FnMut()) -> f64 {
    f();
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let mut calls = 0;
    while wall.elapsed().as_secs_f64() < 2.0 {
        f();
        calls += 1;
    }
    (cpu_seconds() - cpu) / calls as f64
}

fn main() {
    let (b, h, d) = (1, 4, 64);
    println!("threads {}; GFLOP per CPU-second", kiln_core::parallel::num_threads());
    println!("{:>5} {:>10} {:>10} {:>10}", "T", "tiles", "forward", "fwd+bwd");
    for t in [128, 512, 2048] {
        let q = ops::randn(&[b, h, t, d], 0.0, 1.0, Some(1)).unwrap();
        let k = ops::randn(&[b, h, t, d], 0.0, 1.0, Some(2)).unwrap();
        let v = ops::randn(&[b, h, t, d], 0.0, 1.0, Some(3)).unwrap();
        // QKᵀ and PV: 2 products of 2·T²·D flops each; the backward does 5 more (its dQ pass
        // recomputes QKᵀ and dP), so fwd+bwd is counted as 3.5x the forward.
        let flops = 4.0 * (b * h * t * t * d) as f64;
        for (tq, tk) in [(64, 64), (64, 128), (128, 64), (128, 128), (32, 256)] {
            let options = AttentionOptions { tiles: Tiles { query: tq, key: tk }, ..Default::default() };
            let fwd = cpu_per_call(|| drop(attention(&q, &k, &v, None, &options).unwrap()));
            let (ql, kl, vl) = (q.set_requires_grad(true).unwrap(), k.set_requires_grad(true).unwrap(), v.set_requires_grad(true).unwrap());
            let both = cpu_per_call(|| {
                let out = attention(&ql, &kl, &vl, None, &options).unwrap();
                autograd::backward(&out, Some(&v)).unwrap();
            });
            println!("{t:>5} {:>10} {:>10.1} {:>10.1}", format!("{tq}x{tk}"), flops / fwd / 1e9, 3.5 * flops / both / 1e9);
        }
        let composed = cpu_per_call(|| {
            let s = matmul(&q, &k, false, true).unwrap();
            let p = softmax(&ops::binary(ops::BinaryOp::Mul, &s, &kiln_core::Tensor::scalar_f32(0.125)).unwrap(), -1, false).unwrap();
            drop(matmul(&p, &v, false, false).unwrap());
        });
        println!("{t:>5} {:>10} {:>10.1}", "composed", flops / composed / 1e9);
    }
}
