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
    {
        let par = if threads > 1 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
        gemm::gemm(m, n, k, dst, dst_cs, dst_rs, accumulate, a, a_cs, a_rs, b, b_cs, b_rs, if accumulate { 1.0 } else { 0.0 }, scale, false, false, false, par);
    }
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
