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
//!
//! `kiln-flops-probe --read <KiB per thread> [seconds] [runs]` measures instead how fast every
//! thread reads a buffer of its own again and again (summing it, so no load is skipped): `runs`
//! measurements of about `seconds` each, all reported, not the best. Sized for L2, L3 or DRAM,
//! these are the machine's own run-to-run spread at each level of memory, which a training step
//! whose data lives there inherits (bench/README.md, "The machine's own spread"). One JSON line:
//!   {"threads":2,"kib_per_thread":4096,"gbps":[193.1,...]}
//!
//! `kiln-flops-probe --fma-runs [seconds] [runs]`: the widest ISA's FMA rate in `runs` measurements
//! of about `seconds` each, all reported in order (the core's own run-to-run spread, the control
//! beside a training row's 0.7 s measurements in bench/step-controls.mjs). One JSON line:
//!   {"threads":2,"isa":"avx512f","gflops":[231.2,...],"gflops_per_cpu_second":[116.0,...]}
//!
//! `kiln-flops-probe --link [runs]`: how near each other the first two CPUs are, `runs`
//! measurements of about 60 ms: two threads pinned to CPU 0 and CPU 1 bounce one cache line (the
//! round trip's min and median over batches of 50, 20,000 in all), then CPU 0 reads 256 KiB that
//! CPU 1 has just written, against the same read of what CPU 0 wrote itself. A VM's two vCPUs sit
//! wherever the host puts them, and it moves them: on this project's machine either "near" (a
//! round trip of ~60 ns, the other CPU's data read about 1.6x as slowly as its own: cores that
//! share an L3) or "far" (~215 ns, 4-5x: cores that do not). bench/step-controls.mjs runs it beside
//! each measurement (bench/README.md, "Where the two vCPUs sit"). One JSON line:
//!   {"trip_ns_min":[100,...],"trip_ns_median":[120,...],"read_ns_per_kib":{"other_cpu":[14.3,...],"own":[13.1,...]}}

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

    /// `super::read_passes` with 8 x 8 lanes of accumulators (add latency 3 x 2 loads per cycle
    /// in flight); a tail of fewer than 64 values is left out (the buffers are whole KiB).
    #[target_feature(enable = "avx2")]
    pub unsafe fn read_passes_avx2(buffer: &[f32], passes: u64) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 8];
        for _ in 0..passes {
            for chunk in buffer.chunks_exact(64) {
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, _mm256_loadu_ps(chunk.as_ptr().add(8 * i)));
                }
            }
        }
        let mut lanes = [0f32; 8];
        let sum = acc.iter().fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
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
    let rounds = calibrate(kernel, target);
    (0..5).map(|_| measure(kernel, lanes, threads, rounds)).fold((0.0, 0.0), |b, x| (b.0.max(x.0), b.1.max(x.1)))
}

/// Rounds of `kernel` that take about `target` seconds on one thread.
fn calibrate(kernel: Kernel, target: f64) -> u64 {
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
    rounds
}

/// `--fma-runs [seconds, default 0.7] [runs, default 5]`: every measurement of the widest ISA.
fn fma_runs(args: &[String]) {
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(0.7);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let Some(&(isa, lanes, kernel)) = x86::kernels().first() else {
        println!("{{\"error\":\"no AVX2+FMA or AVX-512F on this CPU (the probe is x86-64 only)\"}}");
        return;
    };
    let rounds = calibrate(kernel, seconds);
    let all: Vec<(f64, f64)> = (0..runs).map(|_| measure(kernel, lanes, threads, rounds)).collect();
    let list = |f: fn(&(f64, f64)) -> f64| all.iter().map(|x| format!("{:.1}", f(x))).collect::<Vec<_>>().join(",");
    println!("{{\"threads\":{threads},\"isa\":\"{isa}\",\"gflops\":[{}],\"gflops_per_cpu_second\":[{}]}}", list(|x| x.0), list(|x| x.1));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--read") {
        return read_probe(&args[at + 1..]);
    }
    if let Some(at) = args.iter().position(|a| a == "--fma-runs") {
        return fma_runs(&args[at + 1..]);
    }
    if let Some(at) = args.iter().position(|a| a == "--link") {
        return link_probe(&args[at + 1..]);
    }
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

/// Sums `buffer` `passes` times with independent accumulators (loads, not adds, bound the loop);
/// the result depends on every load, so none is optimized away. 256-bit loads where the CPU has
/// AVX2 (two per cycle on the reference Zen 4: as fast as 512-bit ones).
fn read_passes(buffer: &[f32], passes: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU reports avx2.
        return unsafe { x86::read_passes_avx2(buffer, passes) };
    }
    let mut acc = [0f32; 32];
    for _ in 0..passes {
        for chunk in buffer.chunks_exact(32) {
            for (a, x) in acc.iter_mut().zip(chunk) {
                *a += x;
            }
        }
    }
    acc.iter().sum()
}

/// GB/s (all threads together) of `threads` threads each reading its own buffer `passes` times,
/// started together.
fn read_measure(buffers: &[Vec<f32>], passes: u64) -> f64 {
    let barrier = Barrier::new(buffers.len() + 1);
    let seconds = std::thread::scope(|s| {
        for buffer in buffers {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                black_box(read_passes(black_box(buffer), passes));
                barrier.wait();
            });
        }
        barrier.wait();
        let t0 = Instant::now();
        barrier.wait();
        t0.elapsed().as_secs_f64()
    });
    let bytes: usize = buffers.iter().map(|b| b.len() * 4).sum();
    bytes as f64 * passes as f64 / seconds / 1e9
}

/// `--read <KiB per thread> [seconds, default 0.7] [runs, default 5]`: prints every measurement.
fn read_probe(args: &[String]) {
    let kib: usize = match args.first().and_then(|s| s.parse().ok()) {
        Some(k) if (1..=1 << 20).contains(&k) => k,
        _ => {
            println!("{{\"error\":\"--read needs KiB per thread (1 to 4194304)\"}}");
            return;
        }
    };
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.7);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Small nonzero values: no denormals, no overflow over billions of adds that matter.
    let buffers: Vec<Vec<f32>> = (0..threads).map(|_| vec![1e-7f32; kib * 256]).collect();
    // Calibrate: double the passes until a measurement takes 50 ms, then scale to `seconds`.
    let mut passes = 1u64;
    let gbps = loop {
        let gbps = read_measure(&buffers, passes);
        let took = (kib * 1024 * threads) as f64 * passes as f64 / gbps / 1e9;
        if took > 0.05 {
            passes = ((passes as f64) * seconds / took).ceil() as u64;
            break gbps;
        }
        passes *= 2;
    };
    black_box(gbps);
    let list: Vec<String> = (0..runs).map(|_| format!("{:.1}", read_measure(&buffers, passes))).collect();
    println!("{{\"threads\":{threads},\"kib_per_thread\":{kib},\"gbps\":[{}]}}", list.join(","));
}

/// Pins the calling thread to `cpu` (Linux; elsewhere false: the link cannot be measured).
fn pin_me(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
        }
        let mask: [u64; 16] = std::array::from_fn(|i| if i == cpu / 64 { 1 << (cpu % 64) } else { 0 });
        // SAFETY: pid 0 is the calling thread; the mask is a valid 1024-bit cpu_set_t.
        unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// One link measurement between CPU 0 (this thread) and CPU 1: (round trip ns, min and median of
/// the batches' means; ns
/// per KiB reading what CPU 1 wrote, median; the same for what CPU 0 wrote), or None when a
/// thread could not be pinned.
fn link_measure() -> Option<(f64, f64, f64, f64, f64)> {
    use std::sync::atomic::{AtomicU64, Ordering::*};
    /// The bounced value, alone in its cache lines.
    #[repr(align(128))]
    struct Line(AtomicU64);
    const TRIPS: u64 = 20_000;
    const BATCH: u64 = 50;
    const FLOATS: usize = 64 << 10;
    const READS: u64 = 40;
    /// The partner sets this when it cannot pin itself (u64::MAX: the answer to no ask).
    const REFUSED: u64 = u64::MAX;
    let ball = Line(AtomicU64::new(0));
    let buffer: Vec<AtomicU64> = (0..FLOATS / 2).map(|_| AtomicU64::new(0)).collect();
    let sum = |b: &[AtomicU64]| b.iter().step_by(8).fold(0u64, |s, v| s.wrapping_add(v.load(Relaxed)));
    let write = |b: &[AtomicU64], r: u64| b.iter().enumerate().for_each(|(j, v)| v.store(j as u64 ^ r, Relaxed));
    let wait = |value: u64| loop {
        match ball.0.load(Acquire) {
            v if v == value => return true,
            REFUSED => return false,
            _ => std::hint::spin_loop(),
        }
    };
    let (mut trips, mut other, mut own) = (Vec::new(), Vec::new(), Vec::new());
    // Two vCPUs that are hardware threads of one core share its FMA units: the kernel beside its
    // twin takes about twice as long as alone; on two cores as long. Fastest of FMA_PAIRS each
    // (a pair the scheduler interrupted is slower, never faster).
    const FMA_PAIRS: u64 = 10;
    const FMA_ROUNDS: u64 = 64;
    const FMA_BASE: u64 = 2 * TRIPS + 2 * READS + 1;
    let fma = x86::kernels().first().map(|k| k.2);
    let (mut fma_alone, mut fma_beside) = (f64::MAX, f64::MAX);
    let pinned = std::thread::scope(|s| {
        s.spawn(|| {
            if !pin_me(1) {
                ball.0.store(REFUSED, Release);
                return;
            }
            // Answer every odd value with the next even one; then write the buffer when asked.
            for i in 0..TRIPS {
                if !wait(2 * i + 1) {
                    return;
                }
                ball.0.store(2 * i + 2, Release);
            }
            for r in 0..READS {
                let ask = 2 * TRIPS + 1 + 2 * r;
                if !wait(ask) {
                    return;
                }
                write(&buffer, r);
                ball.0.store(ask + 1, Release);
            }
            // Then run the FMA kernel beside CPU 0's when asked.
            for r in 0..FMA_PAIRS {
                let ask = FMA_BASE + 2 * r;
                if !wait(ask) {
                    return;
                }
                if let Some(kernel) = fma {
                    black_box(kernel(FMA_ROUNDS));
                }
                ball.0.store(ask + 1, Release);
            }
        });
        if !pin_me(0) {
            ball.0.store(REFUSED, Release);
            return false;
        }
        // Timed in batches of BATCH trips, so the clock's own cost (tens of ns) stays out.
        for batch in 0..TRIPS / BATCH {
            let t = Instant::now();
            for i in batch * BATCH..(batch + 1) * BATCH {
                ball.0.store(2 * i + 1, Release);
                if !wait(2 * i + 2) {
                    return false;
                }
            }
            trips.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        // Reads of 8-byte words, every 64th byte: one load per cache line, so the time is the
        // lines' transfer, not the adds.
        let kib = (FLOATS * 4 / 1024) as f64;
        for r in 0..READS {
            let ask = 2 * TRIPS + 1 + 2 * r;
            ball.0.store(ask, Release);
            if !wait(ask + 1) {
                return false;
            }
            let t = Instant::now();
            black_box(sum(&buffer));
            other.push(t.elapsed().as_nanos() as f64 / kib);
            write(&buffer, r + 1);
            let t = Instant::now();
            black_box(sum(&buffer));
            own.push(t.elapsed().as_nanos() as f64 / kib);
        }
        // The FMA kernel on CPU 0 alone (CPU 1 waiting), then beside the same kernel on CPU 1.
        for r in 0..FMA_PAIRS {
            let Some(kernel) = fma else { break };
            let t = Instant::now();
            black_box(kernel(FMA_ROUNDS));
            fma_alone = fma_alone.min(t.elapsed().as_nanos() as f64);
            let ask = FMA_BASE + 2 * r;
            ball.0.store(ask, Release);
            let t = Instant::now();
            black_box(kernel(FMA_ROUNDS));
            fma_beside = fma_beside.min(t.elapsed().as_nanos() as f64);
            if !wait(ask + 1) {
                return false;
            }
        }
        true
    });
    if !pinned {
        return None;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let fma_ratio = if fma.is_some() { fma_beside / fma_alone } else { f64::NAN };
    Some((trips.iter().copied().fold(f64::MAX, f64::min), median(&mut trips), median(&mut other), median(&mut own), fma_ratio))
}

/// `--link [runs, default 5]`: prints every measurement.
fn link_probe(args: &[String]) {
    let runs: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("{{\"error\":\"--link needs two CPUs\"}}");
        return;
    }
    let mut all = Vec::new();
    for _ in 0..runs {
        match link_measure() {
            Some(m) => all.push(m),
            None => {
                println!("{{\"error\":\"--link could not pin a thread to CPU 0 or CPU 1\"}}");
                return;
            }
        }
    }
    let list = |f: fn(&(f64, f64, f64, f64, f64)) -> f64, digits: usize| all.iter().map(|x| format!("{:.*}", digits, f(x))).collect::<Vec<_>>().join(",");
    println!(
        "{{\"trip_ns_min\":[{}],\"trip_ns_median\":[{}],\"read_ns_per_kib\":{{\"other_cpu\":[{}],\"own\":[{}]}},\"fma_beside_over_alone\":[{}]}}",
        list(|x| x.0, 0),
        list(|x| x.1, 0),
        list(|x| x.2, 1),
        list(|x| x.3, 1),
        list(|x| x.4, 2)
    );
}
