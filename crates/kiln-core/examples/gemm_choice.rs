//! Which GEMM Kiln's native matmul runs: times Kiln's AVX-512 GEMM (gemm_avx512.rs, which
//! `gemm_avx512::chooses` gives transposed and prepacked b, and row-major b of 512+ rows on 2+
//! threads), the `gemm` crate and `matrixmultiply`
//! (ndarray's GEMM) on square f32 products, all with every thread, into a preallocated
//! destination (no allocation in the figure), plus Kiln's AVX-512 GEMM on the transposed layouts
//! matmul's backward pass uses. `cargo run --release -p kiln-core --example gemm_choice`
// On-CPU nanoseconds of every thread of this process so far (spinning threads included).
use kiln_core::cpu_clock::process_ns as process_cpu_ns;
use kiln_core::device::cpu::gemm_avx512;
use std::time::Instant;

/// (GFLOP/s of wall time, GFLOP per CPU-second of the process), each the best of 5 rounds. The
/// second is what a loaded machine leaves nearly unchanged: compare it with the FMA probe's
/// `gflops_per_cpu_second` (bench/flops-probe), one core's ceiling.
fn gflops(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let reps = (2e9 / (2.0 * (n as f64).powi(3))).clamp(3.0, 5000.0) as usize;
    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        let (t, c) = (Instant::now(), process_cpu_ns());
        for _ in 0..reps {
            f();
        }
        wall = wall.min(t.elapsed().as_secs_f64() / reps as f64);
        cpu = cpu.min((process_cpu_ns() - c) as f64 / 1e9 / reps as f64);
    }
    let gflop = 2.0 * (n as f64).powi(3) / 1e9;
    (gflop / wall, gflop / cpu)
}

fn main() {
    let threads = kiln_core::parallel::num_threads();
    let kiln = gemm_avx512::cpu_supports();
    println!("{threads} threads; GFLOP/s of wall time | GFLOP per CPU-second (best of 5 each){}", if kiln { "" } else { "; no AVX-512 here: no kiln columns" });
    println!("{:>6} {:>16} {:>16} {:>16} {:>16} {:>16} {:>16}", "N", "kiln NN", "kiln NT", "kiln TN", "gemm crate NN", "crate NT", "matrixmult. NN");
    let show = |(w, c): (f64, f64)| format!("{w:>7.1} | {c:>6.1}");
    for n in [64, 128, 256, 512, 1024, 2048] {
        let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let b = a.clone();
        let mut c = vec![0.0f32; n * n];
        let ni = n as isize;
        // (rs, cs) of a plain and of a transposed operand.
        let (plain, trans) = ((ni, 1), (1, ni));
        let mut ours = |sa: (isize, isize), sb: (isize, isize)| {
            if !kiln {
                return (0.0, 0.0);
            }
            let t = if n >= 96 { threads } else { 1 };
            gflops(n, || unsafe {
                let ar = gemm_avx512::MatRef { ptr: a.as_ptr(), rs: sa.0, cs: sa.1 };
                let br = gemm_avx512::MatRef { ptr: b.as_ptr(), rs: sb.0, cs: sb.1 };
                gemm_avx512::gemm(n, n, n, c.as_mut_ptr(), n, false, ar, br, 1.0, t);
            })
        };
        let (k_nn, k_nt, k_tn) = (ours(plain, plain), ours(plain, trans), ours(trans, plain));
        let mut crate_gemm = |sb: (isize, isize)| {
            gflops(n, || unsafe {
                let par = if n >= 96 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
                gemm::gemm(n, n, n, c.as_mut_ptr(), 1, ni, false, a.as_ptr(), 1, ni, b.as_ptr(), sb.1, sb.0, 0.0, 1.0, false, false, false, par);
            })
        };
        let (g_nn, g_nt) = (crate_gemm(plain), crate_gemm(trans));
        let m = gflops(n, || unsafe {
            matrixmultiply::sgemm(n, n, n, 1.0, a.as_ptr(), ni, 1, b.as_ptr(), ni, 1, 0.0, c.as_mut_ptr(), ni, 1);
        });
        println!("{n:>6} {:>16} {:>16} {:>16} {:>16} {:>16} {:>16}", show(k_nn), show(k_nt), show(k_tn), show(g_nn), show(g_nt), show(m));
    }
}
