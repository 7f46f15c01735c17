//! CPU time for the convolution examples (conv_passes.rs, cnn_convs.rs): summed over the
//! process's threads (kiln_core::cpu_clock), so other processes sharing the machine barely move
//! it, unlike wall time.
use kiln_core::cpu_clock::process_ns as process_cpu_ns;
use std::time::Instant;

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
