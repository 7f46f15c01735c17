//! The CPU's matmul: batched GEMMs with broadcast batch dimensions, each operand read through
//! its strides (a transposed operand is a stride swap, never a copy). Native builds run Kiln's
//! own AVX-512 GEMM (gemm_avx512.rs) where `gemm_avx512::chooses` gives it the shape, else the
//! `gemm` crate (it measured faster than matrixmultiply here, see examples/gemm_choice.rs); WASM
//! runs Kiln's SIMD128 GEMM (gemm_simd128.rs).

use crate::error::Result;
use crate::layout::{self, numel};
use crate::parallel::{self, SendPtr, MIN_PARALLEL_FLOPS};
use crate::tensor::Tensor;

/// One matrix operand: base offset plus row/column strides inside the shared buffer.
#[derive(Clone, Copy)]
struct MatView {
    offset: usize,
    row_stride: isize,
    col_stride: isize,
}

/// a [...batchA, M, K] @ b [...batchB, K, N] -> [...batch, M, N] (float32, shapes checked by
/// ops::matmul; `transpose_*` swap an operand's last two dimensions as a view).
pub(crate) fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    const OP: &str = "matmul";
    let a2 = if transpose_a { a.transpose(-1, -2)? } else { a.clone() };
    let b2 = if transpose_b { b.transpose(-1, -2)? } else { b.clone() };
    let (m, k) = (a2.shape()[a2.rank() - 2], a2.shape()[a2.rank() - 1]);
    let n = b2.shape()[b2.rank() - 1];
    let a_batch = &a2.shape()[..a2.rank() - 2];
    let b_batch = &b2.shape()[..b2.rank() - 2];
    let batch = layout::broadcast_shapes(OP, a_batch, b_batch)?;
    let a_bstrides = layout::broadcast_strides(a_batch, &a2.strides()[..a2.rank() - 2], &batch);
    let b_bstrides = layout::broadcast_strides(b_batch, &b2.strides()[..b2.rank() - 2], &batch);
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let len = layout::checked_numel(OP, &out_shape)?;
    let batches = numel(&batch);
    // Kiln's AVX-512 GEMM writes every element of a product with k > 0 without reading it, so
    // its output needs no zero fill (4 MiB at 1024); the other paths start from zeros.
    let b_cs = b2.strides()[b2.rank() - 1] as isize;
    let writes_all = k > 0 && native_gemm_suits(m, n, k, b_cs, gemm_threads(m, n, k));
    let mut out = if writes_all { crate::alloc::try_with_capacity::<f32>(OP, len)? } else { crate::storage::try_zeroed::<f32>(OP, len)? };
    let out_ptr = SendPtr(out.as_mut_ptr());

    if k > 0 && m > 0 && n > 0 && batches > 0 {
        let a_raw = a2.cpu_raw::<f32>(OP)?;
        let b_raw = b2.cpu_raw::<f32>(OP)?;
        let (ar, ac) = (a2.strides()[a2.rank() - 2] as isize, a2.strides()[a2.rank() - 1] as isize);
        let (br, bc) = (b2.strides()[b2.rank() - 2] as isize, b2.strides()[b2.rank() - 1] as isize);

        // When b is shared by every batch and a's batches stack into one tall matrix, one big
        // GEMM beats many small ones (the Linear layer on [batch, seq, features] input).
        let b_shared = b_bstrides.iter().all(|&s| s == 0);
        // Stackable: walking out from the rows, each batch dim of size > 1 steps exactly over the
        // block inside it. Size-1 dims are skipped, and never used as the step: their strides are
        // arbitrary (a permuted view has any stride there), which once stacked a [2, 1, 1, 3] view
        // with its batches 3 apart as if they were 1 apart (found by the fuzzer's matmul rule).
        let a_stackable = {
            let mut block = ar as usize * m;
            (0..batch.len()).rev().filter(|&d| batch[d] > 1).all(|d| {
                let fits = a_bstrides[d] == block;
                block = a_bstrides[d] * batch[d];
                fits
            })
        };
        if batches > 1 && b_shared && a_stackable {
            let av = MatView { offset: a2.offset(), row_stride: ar, col_stride: ac };
            let bv = MatView { offset: b2.offset(), row_stride: br, col_stride: bc };
            // SAFETY: out has room for batches·m·n floats.
            unsafe { gemm_into(a_raw, av, b_raw, bv, out_ptr.get(), batches * m, n, k) };
        } else {
            let offsets = batch_offsets(&batch, &a_bstrides, &b_bstrides, a2.offset(), b2.offset());
            let run = |bi: usize| {
                let (ao, bo) = offsets[bi];
                let av = MatView { offset: ao, row_stride: ar, col_stride: ac };
                let bv = MatView { offset: bo, row_stride: br, col_stride: bc };
                // SAFETY: batch bi owns out[bi*m*n .. (bi+1)*m*n], inside out's room.
                unsafe { gemm_into(a_raw, av, b_raw, bv, out_ptr.ptr().add(bi * m * n), m, n, k) };
            };
            if batches > 1 && m * n * k < MIN_PARALLEL_FLOPS {
                // Many small products: one per task, each single-threaded.
                parallel::for_each_chunk(batches, batches.min(parallel::num_threads() * 4), |s, e| (s..e).for_each(run));
            } else {
                (0..batches).for_each(run);
            }
        }
    }
    if writes_all {
        // SAFETY: every product above wrote its whole m x n block (native_gemm_suits, k > 0).
        unsafe { out.set_len(len) };
    }
    Tensor::from_vec(out, &out_shape)
}

/// Start offsets of a and b for every batch index (row-major over the broadcast batch shape).
fn batch_offsets(batch: &[usize], a_strides: &[usize], b_strides: &[usize], a0: usize, b0: usize) -> Vec<(usize, usize)> {
    let count = numel(batch);
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; batch.len()];
    for _ in 0..count {
        let ao = a0 + index.iter().zip(a_strides).map(|(i, s)| i * s).sum::<usize>();
        let bo = b0 + index.iter().zip(b_strides).map(|(i, s)| i * s).sum::<usize>();
        out.push((ao, bo));
        for d in (0..batch.len()).rev() {
            index[d] += 1;
            if index[d] < batch[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Threads one m x n x k product runs on.
fn gemm_threads(m: usize, n: usize, k: usize) -> usize {
    if m * n * k >= MIN_PARALLEL_FLOPS { parallel::num_threads() } else { 1 }
}

/// Whether `gemm_into` runs Kiln's AVX-512 GEMM for an m x n x k product on `threads` threads
/// whose b has column stride `b_cs` (x86-64 only).
fn native_gemm_suits(m: usize, n: usize, k: usize, b_cs: isize, threads: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::device::cpu::gemm_avx512::chooses(m, n, k, crate::device::cpu::gemm_avx512::b_form(b_cs), threads);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, b_cs, threads);
        false
    }
}

/// dst[m, n] (contiguous) = a[m, k] @ b[k, n], with a and b given by strides.
///
/// SAFETY: dst must be valid for m·n writes that no one else makes during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into(a: &[f32], av: MatView, b: &[f32], bv: MatView, dst: *mut f32, m: usize, n: usize, k: usize) {
    // Bounds of the strided reads, checked once here so the unsafe calls below cannot overrun.
    let last = |v: MatView, rows: usize, cols: usize| v.offset as isize + (rows as isize - 1) * v.row_stride + (cols as isize - 1) * v.col_stride;
    assert!(last(av, m, k) < a.len() as isize && last(bv, k, n) < b.len() as isize);
    let threads = gemm_threads(m, n, k);
    #[cfg(target_arch = "wasm32")]
    {
        // Kiln's own SIMD128 GEMM on WASM (gemm_simd128.rs says why).
        use crate::device::cpu::gemm_simd128::{gemm, MatRef};
        let view = |x: &[f32], v: MatView| MatRef { ptr: x.as_ptr().add(v.offset), rs: v.row_stride, cs: v.col_stride };
        gemm(m, n, k, view(a, av), view(b, bv), dst, threads);
    }
    #[cfg(target_arch = "x86_64")]
    if native_gemm_suits(m, n, k, bv.col_stride, threads) {
        use crate::device::cpu::gemm_avx512::{gemm, MatRef};
        let view = |x: &[f32], v: MatView| MatRef { ptr: x.as_ptr().add(v.offset), rs: v.row_stride, cs: v.col_stride };
        gemm(m, n, k, dst, n, false, view(a, av), view(b, bv), 1.0, threads);
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    gemm_crate_into(a, av, b, bv, dst, m, n, k, threads);
}

/// The native default: the `gemm` crate (AVX-512 / AVX2 kernels) on Kiln's threads (gemm_call::crate_gemm).
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_crate_into(a: &[f32], av: MatView, b: &[f32], bv: MatView, dst: *mut f32, m: usize, n: usize, k: usize, threads: usize) {
    crate::device::cpu::gemm_call::crate_gemm(
        m, n, k,
        dst, n as isize, 1, false,
        a.as_ptr().add(av.offset), av.row_stride, av.col_stride,
        b.as_ptr().add(bv.offset), bv.row_stride, bv.col_stride,
        1.0, threads,
    );
}
