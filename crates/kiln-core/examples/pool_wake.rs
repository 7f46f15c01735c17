//! How long a parallel loop waits for the native pool's worker: the time from the caller's
//! `native_pool::run` to the worker's first chunk, after the caller was idle for `idle` µs (the
//! worker spins 50 µs after a job, then parks: an idle time past that measures a futex wake of a
//! parked worker, below it a spinning worker's pick-up). An mlp-train step leaves the worker
//! idle that long about twice per step (bench/step-controls.mjs's `pool vol` column); each such
//! wait is time the caller runs its loop alone.
//! Prints percentiles of the wait in µs for each idle time given.
//! `cargo run --release -p kiln-core --example pool_wake -- [idle µs ...] (default 20 200 2000)`
use kiln_core::native_pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SAMPLES: usize = 2000;
/// Longest the caller's chunk waits for the worker's before it gives up (and counts it).
const GIVE_UP: Duration = Duration::from_millis(20);

fn main() {
    if native_pool::num_threads() < 2 {
        println!("pool_wake: the pool has one thread (RAYON_NUM_THREADS or the machine): nothing to wake");
        return;
    }
    let idles: Vec<u64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let idles = if idles.is_empty() { vec![20, 200, 2000] } else { idles };
    let origin = Instant::now();
    let ns = || origin.elapsed().as_nanos() as u64;
    println!("{:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}", "idle µs", "min", "p10", "median", "p90", "p99", "max", "gave up");
    for idle in idles {
        let worker_started = AtomicU64::new(0);
        let mut waits = Vec::with_capacity(SAMPLES);
        let mut gave_up = 0;
        for _ in 0..SAMPLES {
            std::thread::sleep(Duration::from_micros(idle));
            worker_started.store(0, Ordering::SeqCst);
            let t0 = ns();
            native_pool::run(2, &|chunk| {
                if chunk == 1 {
                    // Run by the caller once it gave up: not a worker's start.
                    if std::thread::current().name().is_some_and(|n| n.starts_with("kiln-pool")) {
                        worker_started.store(ns().max(1), Ordering::SeqCst);
                    }
                    return;
                }
                // The caller's chunk (it claims chunk 0 first): hold it until the worker has
                // taken chunk 1, so that the worker's start is what gets measured.
                let deadline = Instant::now() + GIVE_UP;
                while worker_started.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                    std::hint::spin_loop();
                }
            });
            match worker_started.load(Ordering::SeqCst) {
                0 => gave_up += 1,
                at => waits.push((at.saturating_sub(t0)) as f64 / 1e3),
            }
        }
        waits.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| waits.get(((waits.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN);
        println!("{idle:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {gave_up:>10}", at(0.0), at(0.1), at(0.5), at(0.9), at(0.99), at(1.0));
    }
}
