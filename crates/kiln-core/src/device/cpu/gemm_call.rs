//! The one strided GEMM entry for kernels that call a GEMM directly (conv, recurrent layers,
//! attention, linear): on native targets Kiln's AVX-512 GEMM (gemm_avx512.rs) for the row-major
//! destinations and shapes `gemm_avx512::chooses` gives it, the `gemm` crate for the rest;
//! Kiln's own SIMD128 GEMM (gemm_simd128.rs) on wasm32, where the crate is not built. matmul.rs
//! has its own call because it needs no strided or accumulating destination.

/// Whether one GEMM call may use the thread pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    None,
    Threads,
}

/// `dst = a · b`, or `dst += a · b` with `accumulate`; a is m x k, b is k x n, dst m x n. Element
/// (i, j) of each lives at `ptr + i * rs + j * cs`.
///
/// # Safety
/// Every element addressed through the strides must be inside its buffer; dst must be valid for
/// writes and must not overlap a or b.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize, n: usize, k: usize,
    dst: *mut f32, dst_rs: isize, dst_cs: isize, accumulate: bool,
    a: *const f32, a_rs: isize, a_cs: isize,
    b: *const f32, b_rs: isize, b_cs: isize,
    parallelism: Parallelism,
) {
    gemm_scaled(m, n, k, dst, dst_rs, dst_cs, accumulate, a, a_rs, a_cs, b, b_rs, b_cs, 1.0, parallelism);
}

/// As `gemm`, with the product scaled: `dst (+)= scale · a · b`.
///
/// # Safety
/// As `gemm`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_scaled(
    m: usize, n: usize, k: usize,
    dst: *mut f32, dst_rs: isize, dst_cs: isize, accumulate: bool,
    a: *const f32, a_rs: isize, a_cs: isize,
    b: *const f32, b_rs: isize, b_cs: isize,
    scale: f32,
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = if parallelism == Parallelism::Threads { crate::parallel::num_threads() } else { 1 };
    #[cfg(target_arch = "x86_64")]
    if dst_cs == 1 && dst_rs >= n as isize && super::gemm_avx512::chooses(m, n, k, super::gemm_avx512::b_form(b_cs), threads) {
        use super::gemm_avx512::{gemm, MatRef};
        let (ar, br) = (MatRef { ptr: a, rs: a_rs, cs: a_cs }, MatRef { ptr: b, rs: b_rs, cs: b_cs });
        gemm(m, n, k, dst, dst_rs as usize, accumulate, ar, br, scale, threads);
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate_gemm(m, n, k, dst, dst_rs, dst_cs, accumulate, a, a_rs, a_cs, b, b_rs, b_cs, scale, threads);
    #[cfg(target_arch = "wasm32")]
    {
        use crate::device::cpu::gemm_simd128::{gemm, MatRef};
        let (ar, br) = (MatRef { ptr: a, rs: a_rs, cs: a_cs }, MatRef { ptr: b, rs: b_rs, cs: b_cs });
        if !accumulate && scale == 1.0 && dst_cs == 1 && dst_rs == n as isize {
            gemm(m, n, k, ar, br, dst, threads);
            return;
        }
        // A strided or accumulating destination: the product goes through a contiguous scratch.
        let mut scratch = vec![0.0f32; m * n];
        gemm(m, n, k, ar, br, scratch.as_mut_ptr(), threads);
        for i in 0..m {
            for j in 0..n {
                let d = dst.offset(i as isize * dst_rs + j as isize * dst_cs);
                let v = scale * scratch[i * n + j];
                *d = if accumulate { *d + v } else { v };
            }
        }
    }
}

/// The `gemm` crate's `dst (+)= scale · a · b` on `threads` threads of Kiln's pool: dst cut into
/// row ranges (when n <= m: every range packs all of b) or column ranges (else: every range packs
/// all of a) that shrink towards the end, each one single-threaded call of the crate. Public for
/// examples/split_balance.rs.
///
/// Why not the crate's `Parallelism::Rayon`: it runs on rayon's global pool, a second pool of as
/// many threads as cores beside Kiln's own (native_pool.rs), whose idle workers spin and yield
/// before they sleep: on 2 cores the MLP and LSTM training steps ran 4 busy threads, most of
/// their CPU on rayon's. The measurements before and after are in bench/README.md, "The training
/// rows' run-to-run spread".
///
/// # Safety
/// As `gemm`.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
pub unsafe fn crate_gemm(
    m: usize, n: usize, k: usize,
    dst: *mut f32, dst_rs: isize, dst_cs: isize, accumulate: bool,
    a: *const f32, a_rs: isize, a_cs: isize,
    b: *const f32, b_rs: isize, b_cs: isize,
    scale: f32, threads: usize,
) {
    use crate::parallel::{for_each_guided, SendPtr};
    // Ranges narrower than this many rows or columns are not worth a thread's packing of the
    // other operand: the product runs on the calling thread. Ranges are whole multiples of it
    // (whole vectors of columns), the last ending at the product's edge.
    const MIN_RANGE: usize = 16;
    let call = |m: usize, n: usize, dst: *mut f32, a: *const f32, b: *const f32| {
        gemm::gemm(m, n, k, dst, dst_cs, dst_rs, accumulate, a, a_cs, a_rs, b, b_cs, b_rs, if accumulate { 1.0 } else { 0.0 }, scale, false, false, false, gemm::Parallelism::None);
    };
    let by_rows = n <= m;
    let len = if by_rows { m } else { n };
    // A product of fewer than MIN_RANGE rows (a batch-1 Linear) stays whole, on one thread: cut
    // into column ranges, its [1, 1000] outputs differed from the whole call's in the last bits
    // (up to 1e-6 relative, measured in the onnx conformance run), and the onnx wheel's light
    // VGG-19 and ZFNet-512, whose reference output is an exactly uniform softmax, failed it.
    if threads <= 1 || m < MIN_RANGE || len < 2 * MIN_RANGE {
        return call(m, n, dst, a, b);
    }
    // Ranges that shrink as the product runs out (parallel::guided_bounds), claimed one at a
    // time: each packs the other operand again (m x k or k x n floats), so the first are large,
    // and the last are one MIN_RANGE each, so the thread on the faster core (or the one that
    // started first) takes more of them. Two equal ranges per thread (the split before) made the
    // product as slow as its slower core: at a core 20% slower, the faster thread's second range
    // ended a quarter of the product before the slower one's (mlp-train's forward and weight
    // gradient, bench/README.md "The training rows' run-to-run spread").
    let (dst, a, b) = (SendPtr(dst), SendPtr(a as *mut f32), SendPtr(b as *mut f32));
    for_each_guided(len, MIN_RANGE, threads, |lo, hi| {
        // SAFETY: the ranges are disjoint rows (or columns) of dst, and of a (or b) inside the
        // caller's operands.
        unsafe {
            if by_rows {
                call(hi - lo, n, dst.get().offset(lo as isize * dst_rs), a.get().offset(lo as isize * a_rs), b.get());
            } else {
                call(m, hi - lo, dst.get().offset(lo as isize * dst_cs), a.get(), b.get().offset(lo as isize * b_cs));
            }
        }
    });
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::crate_gemm;

    /// crate_gemm's guided ranges (rows when n <= m, else columns; pieces of 16 down to a
    /// remainder) against the definition in f64, through strides (NN, NT, TN), accumulating with
    /// a scale, on 1 to 3 threads: every element written once, by the range that owns it.
    #[test]
    fn guided_ranges_match_the_definition() {
        let value = |i: usize, seed: usize| ((i * 2654435761 + seed) % 2001) as f32 / 1000.0 - 1.0;
        for &(m, n, k) in &[(784, 512, 24), (128, 500, 70), (40, 33, 20), (17, 300, 5), (300, 31, 9), (15, 64, 8)] {
            for threads in [1, 2, 3] {
                for (ta, tb) in [(false, false), (false, true), (true, false)] {
                    let (a, b): (Vec<f32>, Vec<f32>) = ((0..m * k).map(|i| value(i, 1)).collect(), (0..k * n).map(|i| value(i, 2)).collect());
                    let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
                    let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
                    let mut dst: Vec<f32> = (0..m * n).map(|i| value(i, 3)).collect();
                    let before = dst.clone();
                    // SAFETY: the strides address a, b and dst inside their buffers.
                    unsafe { crate_gemm(m, n, k, dst.as_mut_ptr(), n as isize, 1, true, a.as_ptr(), a_rs as isize, a_cs as isize, b.as_ptr(), b_rs as isize, b_cs as isize, 0.5, threads) };
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 = (0..k).map(|p| a[i * a_rs + p * a_cs] as f64 * b[p * b_rs + j * b_cs] as f64).sum();
                            let want = before[i * n + j] as f64 + 0.5 * dot;
                            let got = dst[i * n + j] as f64;
                            assert!((got - want).abs() <= 1e-5 * (1.0 + k as f64), "{m}x{n}x{k} t{threads} {ta}/{tb} ({i},{j}): {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
