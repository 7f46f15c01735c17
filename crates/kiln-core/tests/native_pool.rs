//! The native pool (src/native_pool.rs): every chunk once, nested and concurrent loops, panics,
//! the caller taking part, one thread. Its own test binary, so its own pool: the other tests of
//! kiln-core do not keep it busy while these look at which thread ran what.
#![cfg(not(target_arch = "wasm32"))]

use kiln_core::native_pool::{configured_threads, num_threads, run};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Held by each test for its whole run. The test harness runs tests on parallel threads, and a
/// loop started while another thread's job runs goes inline (one job at a time): a test looking
/// at which thread ran what, or at how far a job got before a panic, must not share the pool with
/// another test's job. (Under load, `a_panic_in_a_chunk...` once found its job inline, where
/// chunks stop at the panic: 5 chunks ran, not 15.)
static ONE_TEST_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next test still runs.
    ONE_TEST_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `chunks` chunks and returns how many times each ran.
fn counts(chunks: usize) -> Vec<usize> {
    let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
    run(chunks, &|c| {
        hits[c].fetch_add(1, Relaxed);
    });
    hits.iter().map(|h| h.load(Relaxed)).collect()
}

#[test]
fn every_chunk_runs_exactly_once() {
    let _serial = one_test_at_a_time();
    for chunks in (0..70).chain([127, 128, 129, 1000, 4099]) {
        for _ in 0..20 {
            assert_eq!(counts(chunks), vec![1; chunks], "{chunks} chunks");
        }
    }
}

#[test]
fn nested_loops_run_inline() {
    let _serial = one_test_at_a_time();
    let total = AtomicUsize::new(0);
    let inner_threads = Mutex::new(Vec::new());
    run(8, &|_| {
        let me = std::thread::current().id();
        inner_threads.lock().unwrap().push(num_threads());
        run(8, &|_| {
            // The nested loop's chunks all run on the thread that runs the outer chunk.
            assert_eq!(std::thread::current().id(), me);
            total.fetch_add(1, Relaxed);
        });
    });
    assert_eq!(total.load(Relaxed), 64);
    assert!(inner_threads.into_inner().unwrap().iter().all(|&n| n == 1), "inside a chunk num_threads() is 1");
    assert_eq!(num_threads(), configured_threads(), "back to the configured count after the region");
}

#[test]
fn concurrent_callers_each_get_every_chunk_once() {
    let _serial = one_test_at_a_time();
    // Chunks of a few microseconds, so that the callers' jobs overlap in time.
    let busy_counts = |chunks: usize| {
        let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
        run(chunks, &|c| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(5) {
                std::hint::spin_loop();
            }
            hits[c].fetch_add(1, Relaxed);
        });
        hits.iter().map(|h| h.load(Relaxed)).collect::<Vec<_>>()
    };
    let start = std::sync::Barrier::new(6);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (start, busy_counts) = (&start, &busy_counts);
            s.spawn(move || {
                start.wait();
                for i in 0..300 {
                    let chunks = 1 + (i * 7 + t) % 40;
                    assert_eq!(busy_counts(chunks), vec![1; chunks], "thread {t}, job {i}");
                }
            });
        }
    });
}

/// Runs jobs until one has a chunk run on a thread other than the caller (a worker took part)
/// and returns true, or gives up after `tries`.
fn some_chunk_runs_off_the_caller(tries: usize, chunk: impl Fn(usize, bool) + Sync) -> bool {
    let caller = std::thread::current().id();
    for _ in 0..tries {
        let off = AtomicUsize::new(0);
        run(4, &|c| {
            let elsewhere = std::thread::current().id() != caller;
            if elsewhere {
                off.fetch_add(1, Relaxed);
            }
            chunk(c, elsewhere);
        });
        if off.load(Relaxed) > 0 {
            return true;
        }
    }
    false
}

#[test]
fn the_caller_and_a_worker_share_a_job() {
    let _serial = one_test_at_a_time();
    if configured_threads() < 2 {
        return;
    }
    // Chunks of about a millisecond: the caller cannot take them all before a worker wakes. The
    // scheduler decides each job (a preempted caller may find a spinning worker took every
    // chunk; another test's job running makes this one inline), so jobs are run until one had
    // chunks on both the caller and a worker.
    let caller = std::thread::current().id();
    let shared = (0..200).any(|_| {
        let (on_caller, on_worker) = (AtomicUsize::new(0), AtomicUsize::new(0));
        run(4, &|_| {
            let counter = if std::thread::current().id() == caller { &on_caller } else { &on_worker };
            counter.fetch_add(1, Relaxed);
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
        });
        on_caller.load(Relaxed) > 0 && on_worker.load(Relaxed) > 0
    });
    assert!(shared, "in 200 jobs of 4 chunks, none ran chunks on both the caller and a worker");
}

#[test]
fn a_panic_in_a_chunk_reaches_the_caller_and_the_pool_keeps_working() {
    let _serial = one_test_at_a_time();
    // On the calling thread or a worker: the panic comes back, after the other chunks ran.
    let ran = AtomicUsize::new(0);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        run(16, &|c| {
            if c == 5 {
                panic!("deliberate panic in chunk 5");
            }
            ran.fetch_add(1, Relaxed);
        })
    }));
    let payload = caught.expect_err("the panic reached the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"deliberate panic in chunk 5"));
    if configured_threads() >= 2 {
        // On the pool every other chunk finishes first (inline, on one thread, chunks stop at
        // the panic, as they did under rayon).
        assert_eq!(ran.load(Relaxed), 15, "every other chunk finished first");
    }
    assert_eq!(counts(33), vec![1; 33]);

    // A panic on a worker thread specifically.
    if configured_threads() >= 2 {
        let worker_panicked = catch_unwind(AssertUnwindSafe(|| {
            some_chunk_runs_off_the_caller(200, |_, elsewhere| {
                if elsewhere {
                    panic!("deliberate panic on a worker");
                }
                std::thread::sleep(Duration::from_millis(1));
            })
        }));
        let payload = worker_panicked.expect_err("a worker's panic reached the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"deliberate panic on a worker"));
        for chunks in [2, 3, 17, 64] {
            assert_eq!(counts(chunks), vec![1; chunks]);
        }
    }
}

/// The child half of `one_thread_runs_everything_on_the_caller` (ignored unless asked for).
#[test]
#[ignore]
fn one_thread_child() {
    assert_eq!(std::env::var("RAYON_NUM_THREADS").as_deref(), Ok("1"), "run through one_thread_runs_everything_on_the_caller");
    assert_eq!((configured_threads(), num_threads()), (1, 1));
    let caller = std::thread::current().id();
    let hits: Vec<AtomicUsize> = (0..50).map(|_| AtomicUsize::new(0)).collect();
    run(50, &|c| {
        assert_eq!(std::thread::current().id(), caller);
        hits[c].fetch_add(1, Relaxed);
    });
    assert!(hits.iter().all(|h| h.load(Relaxed) == 1));
    let panicked = catch_unwind(AssertUnwindSafe(|| run(4, &|c| assert_ne!(c, 2, "deliberate"))));
    assert!(panicked.is_err());
    assert_eq!(counts(7), vec![1; 7]);
}

/// `RAYON_NUM_THREADS=1`: no worker, every chunk on the caller (in a child process: the thread
/// count is read once per process).
#[test]
fn one_thread_runs_everything_on_the_caller() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "one_thread_child", "--ignored", "--test-threads=1"])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "{}", String::from_utf8_lossy(&out.stdout));
}

/// parallel::guided_bounds: pieces cover 0..n once, in whole units (the last ends at n), each no
/// larger than the one before, the last ones a single unit; a few large pieces first.
#[test]
fn guided_pieces_shrink_to_one_unit() {
    use kiln_core::parallel::guided_bounds;
    for threads in 1..=4 {
        for unit in [1usize, 16] {
            for n in (0..200).chain([784, 1000, 4099]) {
                let b = guided_bounds(n, unit, threads);
                assert_eq!((b[0], *b.last().unwrap()), (0, n), "n {n} unit {unit} threads {threads}: {b:?}");
                let sizes: Vec<usize> = b.windows(2).map(|w| w[1] - w[0]).collect();
                assert!(sizes.iter().all(|&s| s > 0), "{b:?}");
                assert!(b[..b.len() - 1].iter().all(|&x| x % unit == 0), "starts on whole units: {b:?}");
                assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "sizes never grow: {sizes:?}");
                assert!(sizes.last().is_none_or(|&s| s <= unit), "the last piece is one unit: {sizes:?}");
                let first = n.div_ceil(unit).div_ceil(2 * threads) * unit;
                assert!(sizes.first().is_none_or(|&s| s == first.min(n)), "the first piece is 1/(2·threads) of the whole: {sizes:?}");
            }
        }
    }
    // The worked example in guided_bounds' documentation.
    let b = guided_bounds(784, 16, 2);
    assert_eq!(b.windows(2).map(|w| (w[1] - w[0]) / 16).collect::<Vec<_>>(), [13, 9, 7, 5, 4, 3, 2, 2, 1, 1, 1, 1]);
}

/// A guided loop on two threads, the worker twice as slow per unit of work (sleeps, so the
/// machine's load does not change the ratio): the caller takes about two thirds of the units
/// (the ideal split), where equal halves would hold it to one half and equal quarters to one half
/// or three quarters, depending on who claims the last.
#[test]
fn a_faster_thread_takes_more_of_a_guided_loop() {
    use kiln_core::parallel::for_each_guided;
    let _serial = one_test_at_a_time();
    if configured_threads() < 2 {
        return;
    }
    let caller = std::thread::current().id();
    let mut shares = Vec::new();
    for _ in 0..40 {
        let (on_caller, on_worker) = (AtomicUsize::new(0), AtomicUsize::new(0));
        for_each_guided(49, 1, 2, |start, end| {
            let here = std::thread::current().id() == caller;
            (if here { &on_caller } else { &on_worker }).fetch_add(end - start, Relaxed);
            std::thread::sleep(Duration::from_micros((end - start) as u64 * if here { 1000 } else { 2000 }));
        });
        let (c, w) = (on_caller.load(Relaxed), on_worker.load(Relaxed));
        assert_eq!(c + w, 49);
        if w > 0 {
            shares.push(c as f64 / 49.0);
        }
        if shares.len() == 5 {
            break;
        }
    }
    assert!(shares.len() >= 3, "in 40 loops the worker took part in only {}", shares.len());
    shares.sort_by(f64::total_cmp);
    let median = shares[shares.len() / 2];
    assert!(median >= 0.58, "the caller (twice as fast) ran a median {:.0}% of the units: {shares:?}", 100.0 * median);
}
