//! The native pool's spin read from `KILN_POOL_SPIN_US` (src/native_pool.rs, `spin`): a test
//! binary of its own, since the pool reads the variable once per process.
#![cfg(not(target_arch = "wasm32"))]

use kiln_core::native_pool::{run, spin};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

#[test]
fn the_spin_comes_from_the_environment_and_jobs_still_finish() {
    // Before the pool's first use, as a process started with the variable set would have it.
    std::env::set_var("KILN_POOL_SPIN_US", " 1234 ");
    assert_eq!(spin(), Duration::from_micros(1234));
    // Jobs separated by more than the spin (the worker parked) and by less (still spinning).
    for pause_us in [0, 500, 3000] {
        let hits = AtomicUsize::new(0);
        for _ in 0..50 {
            std::thread::sleep(Duration::from_micros(pause_us));
            run(8, &|_| {
                hits.fetch_add(1, Relaxed);
            });
        }
        assert_eq!(hits.load(Relaxed), 400, "pause {pause_us} µs");
    }
}
