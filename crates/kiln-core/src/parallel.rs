//! Thread-level parallelism. All of kiln-core's threading goes through here, so each build only
//! changes this file: native builds run chunks on Kiln's native pool (native_pool.rs), the
//! threaded WASM build (target feature `atomics`) on its Web Worker pool (wasm_pool.rs), both
//! with the calling thread taking chunks too; the single-threaded WASM build has no pool
//! (spawning one would fail at run time) and runs every helper inline on the caller.

#[cfg(not(target_arch = "wasm32"))]
use crate::native_pool as pool;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
use crate::wasm_pool as pool;

/// Below this many elements a kernel runs on the calling thread. A parallel region costs more
/// than the split: a worker that parked since the last region (after native_pool.rs's 50 µs
/// spin) must be woken, a context switch of tens of microseconds on a shared machine, where a
/// 64k-element op takes about 10-20 µs. (Measured when the pool was rayon's, whose caller also
/// slept until the workers finished; not re-measured with the caller taking chunks.)
pub const MIN_PARALLEL_ELEMENTS: usize = 1 << 17;

/// Elements per chunk once a kernel runs in parallel: enough chunks per thread for load balance.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
const CHUNK_ELEMENTS: usize = 1 << 14;

/// Most chunks per thread of an elementwise, reduction or optimizer loop. The pool hands chunks
/// out from one counter, so a thread on a slower core takes fewer, but only if there are enough:
/// with 4 equal chunks per thread, a core 20% slower than the other still ended last on its own
/// last chunk (two threads finish at 0.625 of the one-core time against the ideal 0.556, as with
/// two halves); with 8 per thread it is 1-6% of the loop for cores 15-30% apart. This VM's
/// two vCPUs change speed independently by 10-20% (bench/README.md, "The training rows'
/// run-to-run spread"). A chunk costs one atomic claim, well under 1% of 16k elements' work.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
const CHUNKS_PER_THREAD: usize = 8;

/// Below this many multiply-adds a GEMM (or a recurrent layer's whole time loop) runs on the
/// calling thread: the other thread's wake-up would cost more than it saves.
/// The one threshold for matmul.rs, linear.rs and recurrent/sequence.rs.
pub const MIN_PARALLEL_FLOPS: usize = 96 * 96 * 96;

/// Threads a parallel loop started here may use (1 inside a chunk natively: nested loops run
/// inline there).
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub fn num_threads() -> usize {
    pool::num_threads()
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn num_threads() -> usize {
    1
}

/// How many chunks to cut `total` elements into: up to CHUNKS_PER_THREAD per thread.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub fn chunk_count(total: usize) -> usize {
    if total < MIN_PARALLEL_ELEMENTS {
        1
    } else {
        (total / CHUNK_ELEMENTS).clamp(1, num_threads() * CHUNKS_PER_THREAD)
    }
}

/// One thread: one chunk, so kernels take their single-piece path.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn chunk_count(_total: usize) -> usize {
    1
}

/// Runs `f(start, end)` over `chunks` contiguous pieces of `0..n`, in parallel: on the pool's
/// threads and the calling thread.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub fn for_each_chunk(n: usize, chunks: usize, f: impl Fn(usize, usize) + Sync + Send) {
    let chunks = chunks.max(1).min(n.max(1));
    if chunks == 1 {
        f(0, n);
        return;
    }
    pool::run(chunks, &|c| {
        let start = n * c / chunks;
        let end = n * (c + 1) / chunks;
        if start < end {
            f(start, end);
        }
    });
}

/// Single-threaded: the same pieces, one after another. The pieces must stay the same as in the
/// parallel version: some callers pass `chunks == n` and treat `start` as an item index.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn for_each_chunk(n: usize, chunks: usize, f: impl Fn(usize, usize) + Sync + Send) {
    let chunks = chunks.max(1).min(n.max(1));
    for c in 0..chunks {
        let start = n * c / chunks;
        let end = n * (c + 1) / chunks;
        if start < end || chunks == 1 {
            f(start, end);
        }
    }
}

/// Boundaries of the pieces `0..n` is cut into for `threads` threads that claim them in order,
/// largest first (guided self-scheduling): each piece takes 1 / (2·threads) of what is left, in
/// whole multiples of `unit` (the last piece ends at n), none smaller than `unit`. The first
/// pieces are large, so a split whose every piece repacks an operand (a GEMM's row or column
/// ranges) pays few repacks; the last are one unit, so a faster thread takes more of the work
/// and both finish within about a unit of each other, as with equal pieces of one unit each.
/// With `n` of 49 units and 2 threads: 12 pieces (13, 9, 7, 5, 4, 3, 2, 2, 1, 1, 1, 1 units).
pub fn guided_bounds(n: usize, unit: usize, threads: usize) -> Vec<usize> {
    let (unit, threads) = (unit.max(1), threads.max(1));
    let mut bounds = vec![0];
    let mut start = 0;
    while start < n {
        let units_left = (n - start).div_ceil(unit);
        let take = units_left.div_ceil(2 * threads).max(1) * unit;
        start = (start + take).min(n);
        bounds.push(start);
    }
    bounds
}

/// Runs `f(start, end)` over the pieces of `0..n` that `guided_bounds(n, unit, threads)` gives,
/// in parallel on up to `threads` threads (one piece, or one thread: `f(0, n)` inline).
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub fn for_each_guided(n: usize, unit: usize, threads: usize, f: impl Fn(usize, usize) + Sync + Send) {
    let threads = threads.min(num_threads());
    if threads <= 1 || n <= unit {
        f(0, n);
        return;
    }
    let bounds = guided_bounds(n, unit, threads);
    pool::run(bounds.len() - 1, &|p| f(bounds[p], bounds[p + 1]));
}

/// Single-threaded: the whole range in one call.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn for_each_guided(n: usize, _unit: usize, _threads: usize, f: impl Fn(usize, usize) + Sync + Send) {
    f(0, n);
}

/// A raw pointer that may cross threads: kernels use it to write disjoint parts of one output.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub fn get(self) -> *mut T {
        self.0
    }

    /// The pointer, through a reference: a closure calling this captures the whole (Sync)
    /// SendPtr, where `.0` would capture only the raw pointer field, which is not Sync.
    pub fn ptr(&self) -> *mut T {
        self.0
    }
}

/// A read-only value holding raw pointers (a strided matrix view) that the threads of one
/// parallel region share: they only read through it, and the caller keeps what it points to valid
/// and unchanged for the region. The GEMMs' operand views (gemm_avx512, gemm_simd128) cross
/// threads this way.
#[derive(Clone, Copy)]
pub struct SendView<T: Copy>(pub T);
unsafe impl<T: Copy> Send for SendView<T> {}
unsafe impl<T: Copy> Sync for SendView<T> {}
impl<T: Copy> SendView<T> {
    /// The value, through a reference: a closure calling this captures the whole (Sync) wrapper,
    /// where `.0` would capture only the bare field.
    pub fn get(&self) -> T {
        self.0
    }
}

/// Runs `f` over matching chunks of `src` and `dst` (equal lengths), in parallel when large.
/// Chunk lengths are multiples of `align` (a row length), so no row is split.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub fn zip_chunks<A: Sync, B: Send>(src: &[A], dst: &mut [B], align: usize, f: impl Fn(&[A], &mut [B]) + Sync + Send) {
    debug_assert_eq!(src.len(), dst.len());
    if src.len() < MIN_PARALLEL_ELEMENTS || num_threads() == 1 {
        f(src, dst);
        return;
    }
    let align = align.max(1);
    let len = src.len();
    let chunk = len.div_ceil(chunk_count(len)).div_ceil(align) * align;
    let (src_ptr, dst_ptr) = (SendPtr(src.as_ptr() as *mut A), SendPtr(dst.as_mut_ptr()));
    pool::run(len.div_ceil(chunk), &|c| {
        let start = c * chunk;
        let end = (start + chunk).min(len);
        // SAFETY: chunk c owns [start, end) of both slices; the ranges are disjoint.
        let (s, d) = unsafe {
            (std::slice::from_raw_parts(src_ptr.ptr().add(start) as *const A, end - start), std::slice::from_raw_parts_mut(dst_ptr.ptr().add(start), end - start))
        };
        f(s, d);
    });
}

/// Single-threaded: the whole slices in one call.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn zip_chunks<A: Sync, B: Send>(src: &[A], dst: &mut [B], _align: usize, f: impl Fn(&[A], &mut [B]) + Sync + Send) {
    debug_assert_eq!(src.len(), dst.len());
    f(src, dst);
}

/// A lock for the few-instruction critical sections inside parallel regions (a pool of scratch
/// buffers, the first error). Natively std's Mutex. On threaded WASM std's Mutex puts a
/// contended thread to sleep in `memory.atomic.wait32`, which traps on a page's main thread (it
/// may not block: wasm_pool.rs), so there the waiter spins instead; the holder is a thread of the
/// same parallel region, a few instructions from letting go.
pub struct RegionLock<T> {
    #[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
    inner: std::sync::Mutex<T>,
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    busy: std::sync::atomic::AtomicBool,
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    value: std::cell::UnsafeCell<T>,
}

// SAFETY (threaded WASM): `value` is only reached inside `with`, while `busy` is held.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
unsafe impl<T: Send> Sync for RegionLock<T> {}

#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
impl<T> RegionLock<T> {
    pub fn new(value: T) -> Self {
        Self { inner: std::sync::Mutex::new(value) }
    }

    /// Runs `f` on the value, holding the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn into_inner(self) -> T {
        self.inner.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
impl<T> RegionLock<T> {
    pub fn new(value: T) -> Self {
        Self { busy: std::sync::atomic::AtomicBool::new(false), value: std::cell::UnsafeCell::new(value) }
    }

    /// Runs `f` on the value, holding the lock (spinning while another thread holds it).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        while self.busy.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: `busy` is ours until the store below; a panic aborts the instance (wasm32).
        let result = f(unsafe { &mut *self.value.get() });
        self.busy.store(false, Release);
        result
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}
