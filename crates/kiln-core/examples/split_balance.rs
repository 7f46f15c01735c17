//! How a two-thread GEMM of the training rows' shapes splits its work (issue 18, bench/README.md
//! "The training rows' run-to-run spread"): Kiln's shared-b GEMM (row tiles claimed from counters,
//! gemm_avx512/shared_b.rs) against the `gemm` crate on Kiln's pool (gemm_call::crate_gemm: dst
//! cut into a few ranges per thread), on every thread, in turns within each of 9 rounds of about
//! 0.3 s. Per run: wall µs per call (median, min, max over rounds) and CPU µs per call (median,
//! the process's threads summed: what the split costs in work). Run it beside
//! `taskset -c 1 node bench/slow-core.mjs` to see which split waits on a slower core.
//! `cargo run --release -p kiln-core --example split_balance -- 128,512,784,nn 784,512,128,tn`
//! Each shape is m,n,k[,layout]: nn (default), nt (b a transposed view), tn (a transposed).
use kiln_core::cpu_clock::process_ns;
use kiln_core::device::cpu::{gemm_avx512, gemm_call};
#[path = "support/shape_operands.rs"]
mod shape_operands;
use shape_operands::{shape_operands, ShapeOperands};
use std::time::Instant;

const ROUNDS: usize = 9;
const ROUND_SECONDS: f64 = 0.3;

/// (wall µs, CPU µs) per call of each run in each round, the runs taking turns.
fn rounds(runs: &mut [&mut dyn FnMut()]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new(); runs.len()];
    for f in runs.iter_mut() {
        f();
    }
    for _ in 0..ROUNDS {
        for (f, rounds) in runs.iter_mut().zip(out.iter_mut()) {
            let (wall, cpu) = (Instant::now(), process_ns());
            let mut calls = 0;
            while wall.elapsed().as_secs_f64() < ROUND_SECONDS {
                f();
                calls += 1;
            }
            rounds.push((wall.elapsed().as_secs_f64() * 1e6 / calls as f64, (process_ns() - cpu) as f64 / 1e3 / calls as f64));
        }
    }
    out
}

fn summary(r: &[(f64, f64)]) -> String {
    let mut wall: Vec<f64> = r.iter().map(|x| x.0).collect();
    let mut cpu: Vec<f64> = r.iter().map(|x| x.1).collect();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    format!("wall {:7.1} ({:7.1}-{:7.1}) cpu {:7.1}", wall[wall.len() / 2], wall[0], wall[wall.len() - 1], cpu[cpu.len() / 2])
}

fn main() {
    if !gemm_avx512::cpu_supports() {
        println!("split_balance: this CPU has no AVX-512F");
        return;
    }
    let threads = kiln_core::parallel::num_threads();
    for s in std::env::args().skip(1) {
        let ShapeOperands { m, n, k, a, b, mut c, sa, sb } = shape_operands(&s);
        let ni = n as isize;
        let cp = c.as_mut_ptr();
        // SAFETY (both): a, b and c hold the m x k, k x n and m x n elements the strides address.
        let mut shared = || unsafe {
            let (ar, br) = (gemm_avx512::MatRef { ptr: a.as_ptr(), rs: sa.0, cs: sa.1 }, gemm_avx512::MatRef { ptr: b.as_ptr(), rs: sb.0, cs: sb.1 });
            gemm_avx512::gemm(m, n, k, cp, n, false, ar, br, 1.0, threads);
        };
        let mut ranges = || unsafe { gemm_call::crate_gemm(m, n, k, cp, ni, 1, false, a.as_ptr(), sa.0, sa.1, b.as_ptr(), sb.0, sb.1, 1.0, threads) };
        let r = rounds(&mut [&mut shared, &mut ranges]);
        println!("{s:>18} {threads}t  shared-b {}  |  crate ranges {}", summary(&r[0]), summary(&r[1]));
    }
}
