//! The pool's wait counters (`native_pool::waits`, cargo feature `wait-stats`): a caller that
//! waits for a worker's slow chunk is counted as waiting, for as long as it waited, and, since it
//! parks after its short spin, with little CPU. Run with
//! `cargo test --release -p kiln-core --features wait-stats --test native_pool_waits`.
#![cfg(all(feature = "wait-stats", not(target_arch = "wasm32")))]

use kiln_core::native_pool::{configured_threads, run, waits};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::time::Duration;

/// How long the worker's chunk takes: long next to the 50 µs spin, so the caller parks.
const SLOW: Duration = Duration::from_millis(100);
/// Most CPU a parked wait of SLOW may cost: its 50 µs spin and the wake-up, with room. A wait
/// that spun throughout costs far more even on a loaded machine (a spinning caller measured 20 ms
/// of CPU over a 57 ms wait at load average 7).
const PARKED_CPU: Duration = Duration::from_millis(5);

#[test]
fn a_caller_waiting_for_a_worker_is_counted() {
    if configured_threads() < 2 {
        return;
    }
    let caller = std::thread::current().id();
    // The caller's chunk takes a little while, so that the worker (woken from its park) finds the
    // other; if the caller still took both, try again.
    for _ in 0..50 {
        let before = waits::totals()[0];
        let off_caller = AtomicBool::new(false);
        run(2, &|_| {
            if std::thread::current().id() != caller {
                off_caller.store(true, Relaxed);
                std::thread::sleep(SLOW);
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        if !off_caller.load(Relaxed) {
            continue;
        }
        let after = waits::totals()[0];
        let (wall, cpu, count) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
        // The worker may have started its chunk before the caller finished its own: the caller
        // waited for most of SLOW, not necessarily all of it.
        assert!(wall >= SLOW.as_nanos() as u64 / 2, "the caller's wait counted {wall} ns, the worker's chunk took {SLOW:?}");
        assert!(count >= 1, "no wait counted");
        assert!(cpu < PARKED_CPU.as_nanos() as u64, "the wait cost {cpu} ns of CPU over {wall} ns: the caller did not park");
        return;
    }
    panic!("no chunk of 50 jobs ran on the worker");
}
