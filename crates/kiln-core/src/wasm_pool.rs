//! The thread pool of the threaded WASM build (atomics + shared memory): Web Workers that run
//! the same module on the same memory and take chunks of a parallel loop.
//!
//! Why not rayon (through wasm-bindgen-rayon): a thread that is not in rayon's pool blocks on a
//! Condvar until the pool finishes its job, which on wasm32 is `memory.atomic.wait32`, and
//! browsers forbid blocking waits on the page's main thread (the call traps). Kiln's kernels are
//! called from the main thread, synchronously. So here the caller never blocks: it publishes the
//! job, wakes the workers (`notify` is allowed anywhere), takes chunks itself, then spins for the
//! few microseconds until the last worker's chunk is done. Workers sleep in `wait32` between jobs.
//!
//! One job at a time, started only by the thread that owns the tensors (the JS thread); a
//! parallel loop inside a chunk runs inline.

use core::arch::wasm32::{memory_atomic_notify, memory_atomic_wait32};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::*};

/// Workers that have entered `worker_loop`.
static WORKERS: AtomicUsize = AtomicUsize::new(0);
/// Threads a parallel loop may use, caller included (`set_threads`); 0 = all.
static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// The futex word workers sleep on; bumped once per job.
static EPOCH: AtomicI32 = AtomicI32::new(0);
/// (chunk count << 32) | next chunk index: one word, so a worker that grabs an index also learns
/// how many chunks the job that index belongs to has (no torn read across two jobs).
static NEXT: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);
/// The job: a `&(dyn Fn(usize) + Sync)` split into its two words.
static JOB_DATA: AtomicUsize = AtomicUsize::new(0);
static JOB_VTABLE: AtomicUsize = AtomicUsize::new(0);
/// A job is running: nested parallel loops run inline.
static BUSY: AtomicBool = AtomicBool::new(false);
/// Set (through `worker_failed`) when a worker's instance trapped: the caller stops waiting.
static FAILED: AtomicBool = AtomicBool::new(false);
/// Chunks run by workers since start-up (a diagnostic: shows that the workers take part).
static WORKER_CHUNKS: AtomicUsize = AtomicUsize::new(0);

/// Threads available to a parallel loop: the caller plus the running workers, within the limit.
pub fn num_threads() -> usize {
    let all = 1 + WORKERS.load(Relaxed);
    match LIMIT.load(Relaxed) {
        0 => all,
        l => l.min(all),
    }
}

/// Caps the threads parallel loops use (1 = the calling thread only; 0 = all workers).
pub fn set_threads(n: usize) {
    LIMIT.store(n, Relaxed);
}

/// Workers that have started.
pub fn workers() -> usize {
    WORKERS.load(Relaxed)
}

/// Chunks the workers have run since start-up.
pub fn worker_chunks() -> usize {
    WORKER_CHUNKS.load(Relaxed)
}

/// Called by a worker's JavaScript when its instance trapped: the pool cannot finish a job.
pub fn worker_failed() {
    FAILED.store(true, SeqCst);
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// Runs `f(0) .. f(chunks - 1)` on the pool and the calling thread; returns when all are done.
pub fn run(chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    let threads = num_threads();
    if chunks <= 1 || threads <= 1 || chunks > u32::MAX as usize || BUSY.swap(true, Acquire) {
        (0..chunks).for_each(f);
        return;
    }
    // SAFETY: the job's lifetime is erased to park it in statics; it is only called for chunk
    // indices of this job, and this function does not return before every such call finished.
    let [data, vtable]: [usize; 2] = unsafe { std::mem::transmute::<Job<'_>, [usize; 2]>(f) };
    JOB_DATA.store(data, Relaxed);
    JOB_VTABLE.store(vtable, Relaxed);
    DONE.store(0, Relaxed);
    NEXT.store((chunks as u64) << 32, Release);
    EPOCH.fetch_add(1, Release);
    // Wake as many workers as there are chunks to share (the limit may leave some asleep: a
    // sleeping worker never takes a chunk, since it only looks after a wake-up).
    let wake = (threads - 1).min(chunks - 1) as u32;
    // SAFETY: EPOCH is a valid, aligned i32 in the shared memory.
    unsafe { memory_atomic_notify(EPOCH.as_ptr(), wake) };
    take_chunks(false);
    while DONE.load(Acquire) < chunks {
        if FAILED.load(Relaxed) {
            BUSY.store(false, Release);
            panic!("a WASM worker thread aborted during a parallel kernel");
        }
        std::hint::spin_loop();
    }
    // Late workers now find no chunk (count 0) and go back to sleep.
    NEXT.store(0, Release);
    BUSY.store(false, Release);
}

/// Takes and runs chunks of the current job until none is left.
fn take_chunks(worker: bool) {
    loop {
        let word = NEXT.fetch_add(1, AcqRel);
        let (count, index) = ((word >> 32) as usize, (word & 0xffff_ffff) as usize);
        if index >= count {
            return;
        }
        let parts = [JOB_DATA.load(Relaxed), JOB_VTABLE.load(Relaxed)];
        // SAFETY: NEXT's acquire makes the job published with this count visible, and the job
        // outlives this call: `run` waits until DONE counts this chunk.
        let job: Job<'static> = unsafe { std::mem::transmute::<[usize; 2], Job<'static>>(parts) };
        job(index);
        if worker {
            WORKER_CHUNKS.fetch_add(1, Relaxed);
        }
        DONE.fetch_add(1, Release);
    }
}

/// A worker's whole life (never returns): sleep until a job is published, help with it, repeat.
pub fn worker_loop() -> ! {
    WORKERS.fetch_add(1, SeqCst);
    let mut seen = EPOCH.load(Acquire);
    loop {
        // SAFETY: EPOCH is a valid, aligned i32 in the shared memory; -1 = no timeout.
        unsafe { memory_atomic_wait32(EPOCH.as_ptr(), seen, -1) };
        seen = EPOCH.load(Acquire);
        take_chunks(true);
    }
}
