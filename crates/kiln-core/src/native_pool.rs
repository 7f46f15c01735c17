//! The native thread pool: N - 1 worker threads and the calling thread share each parallel loop.
//!
//! Why not rayon's global pool: Kiln's kernels are called from Node's main thread, which is not a
//! pool worker, so every region injected a job, woke a parked worker and put the caller to sleep
//! on a latch until the workers had finished: two context switches or more per op, with only the
//! pool's threads working. An inference runs 50-300 regions of 20 µs to 1 ms each. Here, as in
//! onnxruntime's pool and Kiln's own threaded WASM pool (wasm_pool.rs, the model for this one),
//! the caller publishes the job, wakes the workers that sleep, and takes chunks itself; chunks
//! are claimed from one atomic counter. A worker spins for `SPIN` after a job, looking for the
//! next one, before it parks: the next op of an inference usually starts within that time, and
//! then nobody sleeps or wakes. The spin is bounded so an idle process gives its cores back.
//!
//! One job at a time: a parallel loop started inside a chunk runs inline (its caller is already
//! one of the pool's threads), and so does one started by a second OS thread (a Node worker
//! thread) while another thread's job runs. A panic inside a chunk is caught, the other chunks
//! finish, and the caller resumes the panic (as rayon did); the pool stays usable.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a worker looks for the next job (and the caller for the workers' last chunks) before
/// it parks. Parking costs the next job a futex wake and the sleeper's wake-up latency; spinning
/// costs CPU that, on a shared machine, this process's own threads need. Measured (docs/
/// architecture.md, "Threads"): 0, 50, 200 and 1000 µs; on a loaded machine 50 µs cost no more
/// CPU per inference than not spinning, 200 µs 5-40% more, 1000 µs 25-80% more; on a quieter
/// one 1000 and 5000 µs were no faster than 50.
const SPIN: Duration = Duration::from_micros(50);

/// SPIN, or `KILN_POOL_SPIN_US` microseconds when set: a measurement knob, not a tuning one (so
/// that a quiet window can compare spins on the training rows, whose big loops each start after
/// 50-2000 µs of serial work, mostly after the worker parked: bench/README.md, "Controls in the
/// same seconds").
pub fn spin() -> Duration {
    static FROM_ENV: OnceLock<Duration> = OnceLock::new();
    *FROM_ENV.get_or_init(|| std::env::var("KILN_POOL_SPIN_US").ok().and_then(|v| v.trim().parse().ok()).map_or(SPIN, Duration::from_micros))
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Pool {
    /// The worker threads (fewer than asked if the OS refused to start some).
    workers: Vec<Thread>,
    /// Per worker: it is parked, or about to park (the caller unparks it after publishing).
    sleeping: Vec<AtomicBool>,
    /// Bumped once per job: workers look for a change.
    epoch: AtomicU64,
    /// (chunk count << 32) | next chunk index: one word, so a thread that claims an index also
    /// learns how many chunks the job it belongs to has (no torn read across two jobs).
    next: AtomicU64,
    /// Chunks of the current job finished (run, or panicked).
    done: AtomicUsize,
    /// The job: a `&(dyn Fn(usize) + Sync)` split into its two words.
    job_data: AtomicUsize,
    job_vtable: AtomicUsize,
    /// A job is running: another thread's parallel loop runs inline meanwhile.
    busy: AtomicBool,
    /// The thread that published the current job, and whether it parked waiting for it.
    caller: Mutex<Option<Thread>>,
    caller_parked: AtomicBool,
    /// The first panic of the current job's chunks, resumed on the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

thread_local! {
    /// This thread is running a chunk (a worker always is): nested loops run inline.
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
}

/// Threads of the pool, caller included: `RAYON_NUM_THREADS` when set to a positive number (the
/// variable Kiln's docs have always named, kept when the pool stopped being rayon's), else the
/// machine's available parallelism.
pub fn configured_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let from_env = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
        from_env.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Threads a parallel loop started here may use: 1 inside a chunk (a nested loop runs inline),
/// else the configured count.
pub fn num_threads() -> usize {
    if IN_REGION.with(Cell::get) {
        1
    } else {
        configured_threads()
    }
}

/// The pool, its workers started on first use.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    // A worker started here calls `pool()` too: it waits until this initialisation is over.
    POOL.get_or_init(|| {
        let wanted = configured_threads() - 1;
        let workers: Vec<Thread> = (0..wanted)
            .map_while(|i| std::thread::Builder::new().name(format!("kiln-pool-{i}")).spawn(move || worker_loop(i)).ok())
            .map(|handle| handle.thread().clone())
            .collect();
        Pool {
            sleeping: workers.iter().map(|_| AtomicBool::new(false)).collect(),
            workers,
            epoch: AtomicU64::new(0),
            next: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            job_data: AtomicUsize::new(0),
            job_vtable: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            caller: Mutex::new(None),
            caller_parked: AtomicBool::new(false),
            panic: Mutex::new(None),
        }
    })
}

/// Runs `f(0) .. f(chunks - 1)` on the pool and the calling thread; returns when all are done.
/// A panic in any chunk is resumed here once every chunk has finished.
pub fn run(chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    if chunks <= 1 || num_threads() <= 1 || chunks > u32::MAX as usize {
        (0..chunks).for_each(f);
        return;
    }
    let pool = pool();
    if pool.workers.is_empty() || pool.busy.swap(true, Acquire) {
        // No worker could start, or another thread's job is running: this loop runs inline.
        return run_inline(chunks, f);
    }
    // SAFETY: the job's lifetime is erased to park it in the pool; it is only called for chunk
    // indices of this job, and this function does not return (or unwind) before every such call
    // finished.
    let [data, vtable]: [usize; 2] = unsafe { std::mem::transmute::<Job<'_>, [usize; 2]>(f) };
    *lock(&pool.caller) = Some(std::thread::current());
    pool.job_data.store(data, Relaxed);
    pool.job_vtable.store(vtable, Relaxed);
    pool.done.store(0, Relaxed);
    pool.next.store((chunks as u64) << 32, Release);
    // SeqCst pairs with the worker's SeqCst store of `sleeping` and load of `epoch`: either the
    // worker sees the new epoch before it parks, or this thread sees it asleep and unparks it.
    pool.epoch.fetch_add(1, SeqCst);
    let mut wake = chunks - 1;
    for (worker, sleeping) in pool.workers.iter().zip(&pool.sleeping) {
        if wake == 0 {
            break;
        }
        if sleeping.load(SeqCst) {
            worker.unpark();
        }
        wake -= 1;
    }
    IN_REGION.with(|r| r.set(true));
    take_chunks(pool);
    IN_REGION.with(|r| r.set(false));
    // The workers' last chunks: a running worker is at most a chunk away; one that is not
    // running (preempted on a loaded machine) may be milliseconds away, and then the caller
    // sleeps rather than burn a core.
    wait_for(|| pool.done.load(SeqCst) >= chunks, &pool.caller_parked);
    // Late workers now find no chunk (count 0) and go back to waiting.
    pool.next.store(0, Release);
    let panic = lock(&pool.panic).take();
    pool.busy.store(false, Release);
    if let Some(payload) = panic {
        resume_unwind(payload);
    }
}

/// The chunks in turn on this thread, as a region (nested loops inside run inline too).
fn run_inline(chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    on_this_thread(|| (0..chunks).for_each(f));
}

/// Runs `f` with every parallel loop inside it on the calling thread (`num_threads()` is 1
/// there): what a measurement of one core's speed needs.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    let outer = IN_REGION.with(|r| r.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_REGION.with(|r| r.set(outer));
    result.unwrap_or_else(|payload| resume_unwind(payload))
}

/// Takes and runs chunks of the current job until none is left.
fn take_chunks(pool: &Pool) {
    loop {
        let word = pool.next.fetch_add(1, AcqRel);
        let (count, index) = ((word >> 32) as usize, (word & 0xffff_ffff) as usize);
        if index >= count {
            return;
        }
        let parts = [pool.job_data.load(Relaxed), pool.job_vtable.load(Relaxed)];
        // SAFETY: `next`'s acquire makes the job published with this count visible, and the job
        // outlives this call: `run` waits until `done` counts this chunk.
        let job: Job<'static> = unsafe { std::mem::transmute::<[usize; 2], Job<'static>>(parts) };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job(index))) {
            lock(&pool.panic).get_or_insert(payload);
        }
        if pool.done.fetch_add(1, SeqCst) + 1 == count && pool.caller_parked.load(SeqCst) {
            // The last chunk, and the caller gave up spinning: wake it. (If the caller has
            // already returned, this is a spurious unpark, which every park here tolerates.)
            if let Some(caller) = lock(&pool.caller).as_ref() {
                caller.unpark();
            }
        }
    }
}

/// A worker's whole life: wait for a job (spinning, then parked), help with it, repeat.
fn worker_loop(me: usize) {
    IN_REGION.with(|r| r.set(true));
    #[cfg(feature = "wait-stats")]
    waits::SLOT.with(|s| s.set(me + 1));
    let pool = pool();
    let mut seen = pool.epoch.load(Acquire);
    loop {
        wait_for(|| pool.epoch.load(SeqCst) != seen, &pool.sleeping[me]);
        seen = pool.epoch.load(Acquire);
        take_chunks(pool);
    }
}

/// Returns once `ready()` holds: spins for `spin()`, then parks. The thread that makes `ready()`
/// true unparks this one if it finds `parked` set; both sides use SeqCst (this thread stores
/// `parked` then reads `ready`, the other makes `ready` true then reads `parked`), so at least
/// one of them sees the other's write and no wake-up is lost.
fn wait_for(ready: impl Fn() -> bool, parked: &AtomicBool) {
    if ready() {
        return;
    }
    #[cfg(feature = "wait-stats")]
    let _timed = waits::Timed::start();
    let started = Instant::now();
    let budget = spin();
    let mut spins = 0u32;
    while !ready() {
        spins = spins.wrapping_add(1);
        // The clock is read every 64 spins (a few microseconds), not every spin.
        if spins % 64 != 0 || started.elapsed() < budget {
            std::hint::spin_loop();
            continue;
        }
        parked.store(true, SeqCst);
        if !ready() {
            std::thread::park();
        }
        parked.store(false, SeqCst);
    }
}

/// Where the pool's threads wait, for a measurement build (cargo feature `wait-stats`; nothing
/// is counted without it): per thread, the wall and CPU nanoseconds spent in waits that did not
/// find their condition already true (this file's `wait_for`, the shared-b GEMM's
/// `wait_until`). A thread's CPU minus its waits' CPU is the CPU of its work: what tells a thread
/// that waits for a slower partner from one whose work itself got slower
/// (examples/mlp_products.rs).
#[cfg(feature = "wait-stats")]
pub mod waits {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// Slots: 0 every thread that is not a worker (the callers), 1.. worker 0, 1, ...
    pub const SLOTS: usize = 8;
    static WALL_NS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
    static CPU_NS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
    static COUNT: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

    thread_local! {
        pub(super) static SLOT: Cell<usize> = const { Cell::new(0) };
    }

    /// One wait, counted when dropped.
    pub struct Timed {
        wall: std::time::Instant,
        cpu: u64,
    }

    impl Timed {
        pub fn start() -> Timed {
            Timed { wall: std::time::Instant::now(), cpu: crate::cpu_clock::thread_ns() }
        }
    }

    impl Drop for Timed {
        fn drop(&mut self) {
            let slot = SLOT.with(Cell::get).min(SLOTS - 1);
            WALL_NS[slot].fetch_add(self.wall.elapsed().as_nanos() as u64, Relaxed);
            CPU_NS[slot].fetch_add(crate::cpu_clock::thread_ns().saturating_sub(self.cpu), Relaxed);
            COUNT[slot].fetch_add(1, Relaxed);
        }
    }

    /// Per slot so far: (wall ns, CPU ns, waits).
    pub fn totals() -> Vec<(u64, u64, u64)> {
        (0..SLOTS).map(|i| (WALL_NS[i].load(Relaxed), CPU_NS[i].load(Relaxed), COUNT[i].load(Relaxed))).collect()
    }
}

/// A mutex's value, even if a panicking thread poisoned it (the values here stay consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
