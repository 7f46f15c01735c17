//! CPU time for the convolution examples (conv_passes.rs, cnn_convs.rs): summed over the
//! process's threads (/proc/self/task/*/schedstat), so other processes sharing the machine barely
//! move it, unlike wall time.
use std::time::Instant;

/// On-CPU nanoseconds of every thread of this process so far.
pub fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Best CPU seconds and best wall seconds per call of `f`, over 3 rounds of about `round`
/// seconds of wall time each, after one call to warm up.
pub fn per_call(round: f64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (mut cpu_best, mut wall_best) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        let (wall, cpu) = (Instant::now(), process_cpu_ns());
        let mut calls = 0;
        while wall.elapsed().as_secs_f64() < round {
            f();
            calls += 1;
        }
        cpu_best = cpu_best.min((process_cpu_ns() - cpu) as f64 / 1e9 / calls as f64);
        wall_best = wall_best.min(wall.elapsed().as_secs_f64() / calls as f64);
    }
    (cpu_best, wall_best)
}
