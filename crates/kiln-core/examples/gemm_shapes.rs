//! Kiln's AVX-512 GEMM against the `gemm` crate on the shapes given, one thread and every thread:
//! GFLOP/s of wall time | GFLOP per CPU-second of the process (clock_gettime's process CPU clock:
//! exact for running threads, where /proc's schedstat lags by up to a tick), each the best of 5
//! rounds of about ROUND_GFLOP (default 20) GFLOP; the four runs take turns within each round,
//! and the last column is the median over rounds of Kiln's per-CPU-second figure over the
//! crate's in the same round (1 thread | all): on a machine whose speed drifts, the ratio is the
//! figure to compare. What `gemm_avx512::chooses` was decided from.
//! `cargo run --release -p kiln-core --example gemm_shapes -- 1024,1024,1024 128,256,1024,nt`
//! Each shape is m,n,k[,layout]: nn (default), nt (b a transposed view), tn (a transposed).
//! PACKED=N: Kiln's reads b packed once (`PackedB`), N copies in turn; ONLY_KILN=1: Kiln's only,
//! every thread.
use kiln_core::device::cpu::gemm_avx512;
#[path = "support/shape_operands.rs"]
mod shape_operands;
use shape_operands::{shape_operands, ShapeOperands};
use std::time::Instant;

use kiln_core::cpu_clock::process_ns as process_cpu_ns;

/// Each of `runs` timed in 5 rounds that take them in turn, so a machine whose speed drifts
/// (other tenants, frequency) slows them alike: per run (GFLOP/s of wall time, GFLOP per
/// CPU-second), each the best of its rounds, and its per-CPU-second figure in every round (for
/// ratios between runs of the same round).
fn interleaved(flop: f64, runs: &mut [&mut dyn FnMut()]) -> Vec<((f64, f64), Vec<f64>)> {
    let reps = (std::env::var("ROUND_GFLOP").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(20.0) * 1e9 / flop).clamp(3.0, 200000.0) as usize;
    let mut out = vec![((0.0, 0.0), Vec::new()); runs.len()];
    runs.iter_mut().for_each(|f| f());
    for _ in 0..5 {
        for (f, ((wall, cpu), rounds)) in runs.iter_mut().zip(out.iter_mut()) {
            let (t, c) = (Instant::now(), process_cpu_ns());
            for _ in 0..reps {
                f();
            }
            let round_cpu = flop / 1e9 / ((process_cpu_ns() - c) as f64 / 1e9 / reps as f64);
            *wall = f64::max(*wall, flop / 1e9 / (t.elapsed().as_secs_f64() / reps as f64));
            *cpu = f64::max(*cpu, round_cpu);
            rounds.push(round_cpu);
        }
    }
    out
}

/// The median over rounds of run x's per-CPU-second figure over run y's.
fn median_ratio(x: &[f64], y: &[f64]) -> f64 {
    let mut r: Vec<f64> = x.iter().zip(y).map(|(a, b)| a / b).collect();
    r.sort_by(|a, b| a.total_cmp(b));
    r[r.len() / 2]
}

fn main() {
    let threads = kiln_core::parallel::num_threads();
    let shapes: Vec<String> = std::env::args().skip(1).collect();
    println!("{:>22} {:>15} {:>15} {:>15} {:>15} {:>13}", "m,n,k,layout", "kiln 1t", "kiln all", "crate 1t", "crate all", "kiln/crate");
    for s in shapes {
        let ShapeOperands { m, n, k, a, b, mut c, sa, sb } = shape_operands(&s);
        let ni = n as isize;
        let flop = 2.0 * (m * n * k) as f64;
        let show = |(w, c): (f64, f64)| format!("{w:>6.1} |{c:>6.1}");
        // PACKED=N: N copies of b packed once, used in turn (N > 1: each call finds its b in L3,
        // as the layers of a model do).
        let copies: usize = std::env::var("PACKED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let packed: Vec<_> = (0..copies).map(|_| unsafe { gemm_avx512::PackedB::new(k, n, gemm_avx512::MatRef { ptr: b.as_ptr(), rs: sb.0, cs: sb.1 }) }).collect();
        let mut turn = 0usize;
        // Both GEMMs write the one output, through its pointer: the runs never overlap.
        let cp = c.as_mut_ptr();
        let mut ours = |t: usize| unsafe {
            let ar = gemm_avx512::MatRef { ptr: a.as_ptr(), rs: sa.0, cs: sa.1 };
            let br = gemm_avx512::MatRef { ptr: b.as_ptr(), rs: sb.0, cs: sb.1 };
            if packed.is_empty() {
                gemm_avx512::gemm(m, n, k, cp, n, false, ar, br, 1.0, t);
            } else {
                turn = (turn + 1) % packed.len();
                gemm_avx512::gemm_packed(m, cp, n, false, ar, &packed[turn], 1.0, t);
            }
        };
        if std::env::var_os("ONLY_KILN").is_some() {
            let r = interleaved(flop, &mut [&mut || ours(threads)]);
            println!("{s:>22} {:>15}", show(r[0].0));
            continue;
        }
        let theirs = |t: usize| unsafe {
            let par = if t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None };
            gemm::gemm(m, n, k, cp, 1, ni, false, a.as_ptr(), sa.1, sa.0, b.as_ptr(), sb.1, sb.0, 0.0, 1.0, false, false, false, par);
        };
        // Two runs of the one `ours` closure (it counts turns): RefCell hands it to one at a time.
        let ours = std::cell::RefCell::new(ours);
        let r = interleaved(flop, &mut [&mut || ours.borrow_mut()(1), &mut || ours.borrow_mut()(threads), &mut || theirs(1), &mut || theirs(threads)]);
        let ratios = format!("{:.2} | {:.2}", median_ratio(&r[0].1, &r[2].1), median_ratio(&r[1].1, &r[3].1));
        println!("{s:>22} {:>15} {:>15} {:>15} {:>15} {:>13}", show(r[0].0), show(r[1].0), show(r[2].0), show(r[3].0), ratios);
    }
}
