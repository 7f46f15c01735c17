//! Thread-level parallelism. All of kiln-core's threading goes through here, so a build without
//! threads (single-threaded WASM) only has to change this file: on wasm32 there is no rayon pool
//! (spawning one would fail at run time), and every helper runs its work inline on the caller.

/// Below this many elements a kernel runs on the calling thread: measured, rayon's fork/join
/// costs a few microseconds, which is more than a small elementwise op takes.
pub const MIN_PARALLEL_ELEMENTS: usize = 1 << 15;

#[cfg(not(target_arch = "wasm32"))]
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(target_arch = "wasm32")]
pub fn num_threads() -> usize {
    1
}

/// How many chunks to cut `total` elements into: a few per thread for load balance.
#[cfg(not(target_arch = "wasm32"))]
pub fn chunk_count(total: usize) -> usize {
    (total / MIN_PARALLEL_ELEMENTS).clamp(1, num_threads() * 4)
}

/// One thread: one chunk, so kernels take their single-piece path.
#[cfg(target_arch = "wasm32")]
pub fn chunk_count(_total: usize) -> usize {
    1
}

/// Runs `f(start, end)` over `chunks` contiguous pieces of `0..n`, in parallel.
#[cfg(not(target_arch = "wasm32"))]
pub fn for_each_chunk(n: usize, chunks: usize, f: impl Fn(usize, usize) + Sync + Send) {
    use rayon::prelude::*;
    let chunks = chunks.max(1).min(n.max(1));
    if chunks == 1 {
        f(0, n);
        return;
    }
    (0..chunks).into_par_iter().for_each(|c| {
        let start = n * c / chunks;
        let end = n * (c + 1) / chunks;
        if start < end {
            f(start, end);
        }
    });
}

/// Single-threaded: the same pieces, one after another. The pieces must stay the same as in the
/// parallel version: some callers pass `chunks == n` and treat `start` as an item index.
#[cfg(target_arch = "wasm32")]
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

/// A raw pointer that may cross threads: kernels use it to write disjoint parts of one output.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// Runs `f` over matching chunks of `src` and `dst` (equal lengths), in parallel when large.
/// Chunk lengths are multiples of `align` (a row length), so no row is split.
#[cfg(not(target_arch = "wasm32"))]
pub fn zip_chunks<A: Sync, B: Send>(src: &[A], dst: &mut [B], align: usize, f: impl Fn(&[A], &mut [B]) + Sync + Send) {
    use rayon::prelude::*;
    debug_assert_eq!(src.len(), dst.len());
    if src.len() < MIN_PARALLEL_ELEMENTS {
        f(src, dst);
        return;
    }
    let align = align.max(1);
    let chunk = src.len().div_ceil(chunk_count(src.len())).div_ceil(align) * align;
    src.par_chunks(chunk).zip(dst.par_chunks_mut(chunk)).for_each(|(s, d)| f(s, d));
}

/// Single-threaded: the whole slices in one call.
#[cfg(target_arch = "wasm32")]
pub fn zip_chunks<A: Sync, B: Send>(src: &[A], dst: &mut [B], _align: usize, f: impl Fn(&[A], &mut [B]) + Sync + Send) {
    debug_assert_eq!(src.len(), dst.len());
    f(src, dst);
}
