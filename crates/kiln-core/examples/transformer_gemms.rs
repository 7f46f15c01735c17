//! The GEMMs of the ONNX bench's Transformer (bench/onnx-models.mjs: d 256, feed-forward 1024, 128
//! tokens; M = 128 at batch 1, 1024 at batch 8), each `x [M, K] · Wᵀ` with W [N, K] read through
//! a transposed view as the imported graph hands it over: the `gemm` crate (Kiln's default) and
//! Kiln's AVX-512 GEMM, one thread and every thread, in GFLOP/s of wall time (best of 5 rounds);
//! "NN" reads a copy of Wᵀ made once (a weight transposed at load), "packed" W packed once in
//! Kiln's panel layout (what `kiln.linear` does under `noGrad`), the others the view.
//! `cargo run --release -p kiln-core --example transformer_gemms`
use kiln_core::device::cpu::gemm_avx512;
use std::time::Instant;

/// Best-of-5 GFLOP/s of `f`, an m x n x k product.
fn gflops(m: usize, n: usize, k: usize, mut f: impl FnMut()) -> f64 {
    f();
    let flop = 2.0 * (m * n * k) as f64;
    let reps = (2e8 / flop).clamp(3.0, 2000.0) as usize;
    let round = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        (0..reps).for_each(|_| f());
        t.elapsed().as_secs_f64() / reps as f64
    };
    let best = (0..5).map(|_| round(&mut f)).fold(f64::INFINITY, f64::min);
    flop / best / 1e9
}

fn main() {
    let threads = kiln_core::parallel::num_threads();
    let kiln = gemm_avx512::cpu_supports();
    println!("{threads} threads; GFLOP/s of wall time (best of 5); x [M, K] times a transposed view of W [N, K]");
    println!("{:>5} {:>5} {:>5} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}", "M", "K", "N", "crate 1t", "crate all", "crate NN all", "kiln 1t", "kiln all", "packed 1t", "packed all");
    for m in [128, 1024] {
        for (k, n) in [(256, 256), (256, 1024), (1024, 256)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0).collect();
            let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let mut c = vec![0.0f32; m * n];
            let (ni, ki) = (n as isize, k as isize);
            // (rhs pointer, column stride, row stride): the view of W, or the copy of Wᵀ.
            let (view, copy) = ((w.as_ptr(), ki, 1), (wt.as_ptr(), 1, ni));
            let mut crate_gemm = |t: usize, (rhs, cs, rs): (*const f32, isize, isize)| {
                gflops(m, n, k, || unsafe {
                    let par = if t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
                    // dst (cs 1, rs n), lhs x (cs 1, rs k), rhs [K, N] as given.
                    gemm::gemm(m, n, k, c.as_mut_ptr(), 1, ni, false, x.as_ptr(), 1, ki, rhs, cs, rs, 0.0, 1.0, false, false, false, par);
                })
            };
            let (c1, ca, cn) = (crate_gemm(1, view), crate_gemm(threads, view), crate_gemm(threads, copy));
            let mut ours = |t: usize, (rhs, cs, rs): (*const f32, isize, isize)| {
                if !kiln {
                    return 0.0;
                }
                gflops(m, n, k, || unsafe {
                    let a = gemm_avx512::MatRef { ptr: x.as_ptr(), rs: ki, cs: 1 };
                    let b = gemm_avx512::MatRef { ptr: rhs, rs, cs };
                    gemm_avx512::gemm(m, n, k, c.as_mut_ptr(), n, false, a, b, 1.0, t);
                })
            };
            let (k1, ka) = (ours(1, view), ours(threads, view));
            let mut packed = |t: usize| {
                if !kiln {
                    return 0.0;
                }
                let w_t = gemm_avx512::MatRef { ptr: w.as_ptr(), rs: 1, cs: ki };
                let p = unsafe { gemm_avx512::PackedB::new(k, n, w_t) };
                gflops(m, n, k, || unsafe {
                    let a = gemm_avx512::MatRef { ptr: x.as_ptr(), rs: ki, cs: 1 };
                    gemm_avx512::gemm_packed(m, c.as_mut_ptr(), n, false, a, &p, 1.0, t);
                })
            };
            let (p1, pa) = (packed(1), packed(threads));
            println!("{m:>5} {k:>5} {n:>5} {c1:>12.1} {ca:>12.1} {cn:>12.1} {k1:>12.1} {ka:>12.1} {p1:>12.1} {pa:>12.1}");
        }
    }
}
