//! Thread-level parallelism. All of kiln-core's threading goes through here, so a build without
//! threads (single-threaded WASM) only has to change this file.

/// Below this many elements a kernel runs on the calling thread: measured, rayon's fork/join
/// costs a few microseconds, which is more than a small elementwise op takes.
pub const MIN_PARALLEL_ELEMENTS: usize = 1 << 15;

pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// How many chunks to cut `total` elements into: a few per thread for load balance.
pub fn chunk_count(total: usize) -> usize {
    (total / MIN_PARALLEL_ELEMENTS).clamp(1, num_threads() * 4)
}

/// Runs `f(start, end)` over `chunks` contiguous pieces of `0..n`, in parallel.
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
