//! The machine's f32 fused multiply-add ceiling: every thread runs independent FMA chains in
//! registers (no memory traffic), with the widest vector ISA the CPU has (AVX-512F, else AVX2+FMA,
//! detected at run time). Prints one JSON line:
//!   {"threads":2,"best":{"isa":"avx512f","gflops":231.9,"gflops_per_cpu_second":116.0},"isas":[...]}
//! A GEMM can at best reach `best.gflops`; bench/run.mjs prints matmul-1024's fraction of it.
//! `gflops_per_cpu_second` is one core's figure while it runs (flops over the threads' summed
//! on-CPU time): on a loaded machine compare GEMM figures per CPU-second with it
//! (crates/kiln-core/examples/gemm_choice.rs prints those).
//!
//! Usage: kiln-flops-probe [seconds per measurement, default 0.3] [--widest]
//! `--widest` measures the widest ISA only (bench/run.mjs runs it right before and after each
//! library's matmul-1024 measurement, where a second is worth saving).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

/// Independent accumulators per thread: FMA latency (4 cycles) x FMA ports (2) = 8 in flight at
/// least; 16 leaves room and still fits the 16 (AVX2) / 32 (AVX-512) vector registers.
const CHAINS: usize = 16;
/// FMAs per chain between checks of the clock.
const INNER: usize = 4096;

/// One ISA's kernel: runs `rounds` x INNER x CHAINS vector FMAs, returns a value that depends on them.
type Kernel = fn(u64) -> f32;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CHAINS, INNER};
    use std::arch::x86_64::*;
    use std::hint::black_box;

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_inner(rounds: u64) -> f32 {
        // x*a + b with a slightly below 1 keeps the values bounded (no overflow, no denormals).
        // Opaque to the optimizer: with constants it could prove the chain reaches a fixed point.
        let a = _mm512_set1_ps(black_box(0.999_999));
        let b = _mm512_set1_ps(black_box(1e-6));
        let mut acc = [_mm512_set1_ps(black_box(1.0)); CHAINS];
        for _ in 0..rounds {
            for _ in 0..INNER {
                for v in acc.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, a, b);
                }
            }
        }
        let mut sum = _mm512_setzero_ps();
        for v in acc {
            sum = _mm512_add_ps(sum, v);
        }
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_inner(rounds: u64) -> f32 {
        // Opaque to the optimizer: with constants it could prove the chain reaches a fixed point.
        let a = _mm256_set1_ps(black_box(0.999_999));
        let b = _mm256_set1_ps(black_box(1e-6));
        let mut acc = [_mm256_set1_ps(black_box(1.0)); CHAINS];
        for _ in 0..rounds {
            for _ in 0..INNER {
                for v in acc.iter_mut() {
                    *v = _mm256_fmadd_ps(*v, a, b);
                }
            }
        }
        let mut sum = _mm256_setzero_ps();
        for v in acc {
            sum = _mm256_add_ps(sum, v);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }

    pub fn avx512(rounds: u64) -> f32 {
        // SAFETY: only listed by `kernels()` when the CPU reports avx512f.
        unsafe { avx512_inner(rounds) }
    }

    pub fn avx2(rounds: u64) -> f32 {
        // SAFETY: only listed by `kernels()` when the CPU reports avx2 and fma.
        unsafe { avx2_inner(rounds) }
    }

    /// (name, f32 lanes per vector, kernel) for each ISA this CPU supports, widest first.
    pub fn kernels() -> Vec<(&'static str, usize, super::Kernel)> {
        let mut out: Vec<(&'static str, usize, super::Kernel)> = Vec::new();
        if is_x86_feature_detected!("avx512f") {
            out.push(("avx512f", 16, avx512));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push(("avx2+fma", 8, avx2));
        }
        out
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub fn kernels() -> Vec<(&'static str, usize, super::Kernel)> {
        Vec::new()
    }
}

/// On-CPU nanoseconds of the calling thread (Linux; 0 elsewhere, and the CPU figure is then left out).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// (GFLOP/s of wall time, GFLOP per on-CPU second summed over the threads) of `kernel` on
/// `threads` threads started together, each running `rounds` rounds. The second figure is what a
/// core gives while it runs: on a machine other processes share it stays near the quiet figure
/// (they stretch the wall time, not the CPU time), so GEMM figures per CPU-second compare with it.
fn measure(kernel: Kernel, lanes: usize, threads: usize, rounds: u64) -> (f64, f64) {
    let barrier = Barrier::new(threads + 1);
    let cpu_ns = std::sync::atomic::AtomicU64::new(0);
    let seconds = std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                let c0 = thread_cpu_ns();
                black_box(kernel(black_box(rounds)));
                cpu_ns.fetch_add(thread_cpu_ns() - c0, std::sync::atomic::Ordering::Relaxed);
                barrier.wait();
            });
        }
        barrier.wait();
        let t0 = Instant::now();
        barrier.wait();
        t0.elapsed().as_secs_f64()
    });
    let gflop = 2.0 * (lanes * CHAINS * INNER) as f64 * rounds as f64 * threads as f64 / 1e9;
    let cpu = cpu_ns.into_inner() as f64 / 1e9;
    (gflop / seconds, if cpu > 0.0 { gflop / cpu } else { 0.0 })
}

/// Best of 5 measurements of about `target` seconds each, after calibrating the round count:
/// (GFLOP/s, GFLOP per CPU-second), each the best of its own.
fn peak(kernel: Kernel, lanes: usize, threads: usize, target: f64) -> (f64, f64) {
    let mut rounds = 1u64;
    loop {
        let t0 = Instant::now();
        black_box(kernel(black_box(rounds)));
        let t = t0.elapsed().as_secs_f64();
        if t > 0.02 {
            rounds = ((rounds as f64) * target / t).ceil() as u64;
            break;
        }
        rounds *= 2;
    }
    (0..5).map(|_| measure(kernel, lanes, threads, rounds)).fold((0.0, 0.0), |b, x| (b.0.max(x.0), b.1.max(x.1)))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target: f64 = args.iter().find_map(|s| s.parse().ok()).unwrap_or(0.3);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut kernels = x86::kernels();
    if args.iter().any(|a| a == "--widest") {
        kernels.truncate(1);
    }
    if kernels.is_empty() {
        println!("{{\"error\":\"no AVX2+FMA or AVX-512F on this CPU (the probe is x86-64 only)\"}}");
        return;
    }
    let isas: Vec<(&str, (f64, f64))> = kernels.iter().map(|&(name, lanes, k)| (name, peak(k, lanes, threads, target))).collect();
    let best = isas.iter().cloned().fold(("", (0.0, 0.0)), |b, x| if x.1 .0 > b.1 .0 { x } else { b });
    let list: Vec<String> = isas.iter().map(|(n, (g, c))| format!("{{\"isa\":\"{n}\",\"gflops\":{g:.1},\"gflops_per_cpu_second\":{c:.1}}}")).collect();
    println!(
        "{{\"threads\":{threads},\"best\":{{\"isa\":\"{}\",\"gflops\":{:.1},\"gflops_per_cpu_second\":{:.1}}},\"isas\":[{}]}}",
        best.0,
        best.1 .0,
        best.1 .1,
        list.join(",")
    );
}
