//! Why Kiln's matmul uses the `gemm` crate: times it against `matrixmultiply` (ndarray's GEMM) on
//! square f32 products, both with all threads. `cargo run --release --example gemm_choice`
use std::time::Instant;

fn gflops(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let reps = (2e9 / (2.0 * (n as f64).powi(3))).clamp(3.0, 5000.0) as usize;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn main() {
    let threads = rayon::current_num_threads();
    println!("{:>6} {:>14} {:>22}", "N", "gemm GFLOP/s", "matrixmultiply GFLOP/s");
    for n in [64, 256, 1024] {
        let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let b = a.clone();
        let mut c = vec![0.0f32; n * n];
        let g = gflops(n, || unsafe {
            let par = if n >= 128 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            gemm::gemm(n, n, n, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, n as isize, b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, par);
        });
        let m = gflops(n, || unsafe {
            matrixmultiply::sgemm(n, n, n, 1.0, a.as_ptr(), n as isize, 1, b.as_ptr(), n as isize, 1, 0.0, c.as_mut_ptr(), n as isize, 1);
        });
        println!("{n:>6} {g:>14.1} {m:>22.1}");
    }
}
