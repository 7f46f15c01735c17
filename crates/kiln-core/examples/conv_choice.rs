//! Why Kiln's convolution is im2col + GEMM: times Kiln's conv2d against a direct kernel written
//! for the same machine (register-blocked 8 output channels x 16 columns, compiled for AVX-512 /
//! AVX2 / portable by `multiversion!`, images in parallel), and against the bare GEMM of the same
//! size (the ceiling im2col + GEMM could reach). Also prints forward + one backward pass (twice the
//! FLOPs of the forward).
//! `cargo run --release -p kiln-core --example conv_choice`
#![allow(clippy::too_many_arguments)] // kernel sizes passed plainly, as in the shipped kernels
use kiln_core::ops::{self, ConvParams};
use kiln_core::{autograd, Tensor};
use rayon::prelude::*;
use std::time::Instant;

/// Best seconds per call over a few rounds.
fn seconds(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64();
    let reps = (0.2 / once).clamp(2.0, 2000.0) as usize;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// Nanoseconds this thread has run on a CPU (Linux), or None elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// Best seconds of on-CPU time per call, on one thread: what one core delivers, unaffected by
/// other processes taking turns on the cores (the 2-thread figures are wall-clock and are not).
fn cpu_seconds_one_thread(f: impl Fn() + Send + Sync) -> Option<f64> {
    // Kiln's kernels on the calling thread only, and this file's own rayon loops on a pool of one.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok()?;
    pool.install(|| kiln_core::native_pool::on_this_thread(|| {
        f();
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let (t, mut reps) = (thread_cpu_ns()?, 0);
            while thread_cpu_ns()? - t < 100_000_000 {
                f();
                reps += 1;
            }
            best = best.min((thread_cpu_ns()? - t) as f64 / 1e9 / reps as f64);
        }
        Some(best)
    }))
}

const BLOCK_O: usize = 8;
const LANES: usize = 16;

kiln_core::multiversion! {
    /// One image, stride 1, 'same' padding p: out[o, y, x] = Σ w[o, c, ki, kj] · padded[c, y + ki, x + kj].
    /// `padded` is [c, h + 2p, wp] with wp ≥ w + 2p rounded so every 16-wide load is in bounds;
    /// `out` is [o, h, wo] with wo = w rounded up to 16.
    fn direct_image(padded: &[f32], wp: usize, weight: &[f32], c: usize, k: usize, h: usize, wo: usize, out: &mut [f32]) {
        let hp = padded.len() / (c * wp);
        let o = out.len() / (h * wo);
        for ob in (0..o).step_by(BLOCK_O) {
            for y in 0..h {
                for x0 in (0..wo).step_by(LANES) {
                    let mut acc = [[0.0f32; LANES]; BLOCK_O];
                    for ci in 0..c {
                        for ki in 0..k {
                            let row = &padded[(ci * hp + y + ki) * wp + x0..];
                            for kj in 0..k {
                                let v: [f32; LANES] = row[kj..kj + LANES].try_into().unwrap();
                                for (bo, a) in acc.iter_mut().enumerate() {
                                    let wv = weight[(((ob + bo) * c + ci) * k + ki) * k + kj];
                                    for l in 0..LANES {
                                        a[l] += wv * v[l];
                                    }
                                }
                            }
                        }
                    }
                    for (bo, a) in acc.iter().enumerate() {
                        out[((ob + bo) * h + y) * wo + x0..][..LANES].copy_from_slice(a);
                    }
                }
            }
        }
    }
}

/// The direct kernel over a batch (images in parallel), cropped to [n, o, h, w].
fn direct(x: &[f32], w: &[f32], n: usize, c: usize, h: usize, wd: usize, o: usize, k: usize) -> Vec<f32> {
    let p = k / 2;
    let wo = wd.div_ceil(LANES) * LANES;
    let (hp, wp) = (h + 2 * p, wo + k - 1);
    let mut out = vec![0.0f32; n * o * h * wd];
    out.par_chunks_mut(o * h * wd).enumerate().for_each(|(ni, dst)| {
        let mut padded = vec![0.0f32; c * hp * wp];
        for ci in 0..c {
            for y in 0..h {
                let src = &x[((ni * c + ci) * h + y) * wd..][..wd];
                padded[(ci * hp + y + p) * wp + p..][..wd].copy_from_slice(src);
            }
        }
        let mut full = vec![0.0f32; o * h * wo];
        direct_image(&padded, wp, w, c, k, h, wo, &mut full);
        for (row, src) in dst.chunks_mut(wd).zip(full.chunks(wo)) {
            row.copy_from_slice(&src[..wd]);
        }
    });
    out
}

fn main() {
    println!("threads: {}, SIMD: {}", kiln_core::parallel::num_threads(), kiln_core::simd::level_name());
    println!("GFLOP/s of wall-clock time with all threads, except the last two columns: GFLOP per on-CPU second of one thread.");
    println!("{:<32} {:>12} {:>8} {:>10} {:>11} {:>12} {:>19} {:>14}", "conv2d 3x3 'same'", "im2col+GEMM", "direct", "bare GEMM", "fwd+dInput", "fwd+dWeight", "im2col+GEMM 1 core", "direct 1 core");
    for (name, n, c, h, o) in [("(a) 32 x 28x28x1 -> 32", 32, 1, 28, 32), ("(b) 8 x 32x32x64 -> 64", 8, 64, 32, 64), ("8 x 16x16x128 -> 128", 8, 128, 16, 128)] {
        let k = 3;
        let flops = 2.0 * (n * o * h * h * c * k * k) as f64;
        let x = ops::randn(&[n, c, h, h], 0.0, 1.0, Some(1)).unwrap();
        let w = ops::randn(&[o, c, k, k], 0.0, 0.1, Some(2)).unwrap();
        let p = ConvParams { padding: [1; 4], ..ConvParams::default() };
        let kiln = seconds(|| drop(ops::conv2d(&x, &w, None, &p).unwrap()));

        let (xv, wv) = (x.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
        let want = ops::conv2d(&x, &w, None, &p).unwrap().to_vec::<f32>().unwrap();
        let got = direct(&xv, &wv, n, c, h, h, o, k);
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-3, "the direct kernel disagrees with conv2d by {err}");
        let direct_s = seconds(|| drop(direct(&xv, &wv, n, c, h, h, o, k)));

        // The GEMMs alone: per image [o, c·9] x [c·9, h·h], images in parallel, no im2col.
        let cols = vec![0.5f32; n * c * k * k * h * h];
        let mut dst = vec![0.0f32; n * o * h * h];
        let bare = seconds(|| {
            dst.par_chunks_mut(o * h * h).zip(cols.par_chunks(c * k * k * h * h)).for_each(|(d, col)| unsafe {
                gemm::gemm(o, h * h, c * k * k, d.as_mut_ptr(), 1, (h * h) as isize, false, wv.as_ptr(), 1, (c * k * k) as isize, col.as_ptr(), 1, (h * h) as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::None);
            })
        });

        let (xg, wg) = (x.set_requires_grad(true).unwrap(), w.set_requires_grad(true).unwrap());
        let dy = ops::randn(&[n, o, h, h], 0.0, 1.0, Some(3)).unwrap();
        let backward = |x: &Tensor, w: &Tensor| {
            let out = ops::conv2d(x, w, None, &p).unwrap();
            autograd::backward(&out, Some(&dy)).unwrap();
        };
        let input_grad = seconds(|| backward(&xg, &w));
        let weight_grad = seconds(|| backward(&x, &wg));
        let g = |s: f64| flops / s / 1e9;
        let per_core = |s: Option<f64>| s.map_or("n/a".to_string(), |s| format!("{:.1}", g(s)));
        let core = per_core(cpu_seconds_one_thread(|| drop(ops::conv2d(&x, &w, None, &p).unwrap())));
        let direct_core = per_core(cpu_seconds_one_thread(|| drop(direct(&xv, &wv, n, c, h, h, o, k))));
        println!("{name:<32} {:>12.1} {:>8.1} {:>10.1} {:>11.1} {:>12.1} {core:>19} {direct_core:>14}", g(kiln), g(direct_s), g(bare), 2.0 * g(input_grad), 2.0 * g(weight_grad));
    }
}
