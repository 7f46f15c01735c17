//! The per-step recurrent product (h_prev · W_hhᵀ forward, dgates · W_hh in BPTT) with the weight
//! packed ONCE per sequence and reused by every step.
//!
//! Why not the general GEMM: a step's product is small (batch 32: 32x128 · 128x512) and runs once
//! per step, 2·steps times per training step. The general GEMM packs its right operand on every
//! call (64K floats here, as much memory traffic as the product's own loads) and forks threads
//! for it; both are per-call costs that the recurrence pays again at every step. Here the weight
//! is laid out once in the order the micro-kernel reads it (column panels of NR, each [K][NR]
//! contiguous, the last one zero-padded), and each step runs a register-blocked MR x NR kernel
//! straight from it: the left operand (a step's batch rows) is read in place, row-major.
//!
//! Only x86-64 with AVX2+FMA or AVX-512 takes this path (`PackedWeight::new` returns None
//! elsewhere): the kernel relies on `f32::mul_add` becoming one FMA instruction, which holds only
//! where the target has FMA; on WASM and FMA-less CPUs it would call a software fma, so those keep
//! the general GEMM (on WASM, Kiln's own SIMD128 GEMM).

// The kernels below exist only for x86-64; elsewhere `PackedWeight::new` returns None and the
// rest is never called.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// Columns per panel: one AVX-512 register, two AVX2 registers.
const NR: usize = 16;

/// The right operand of a per-step product, K x N, packed into column panels of NR.
pub struct PackedWeight {
    k: usize,
    n: usize,
    /// ceil(n / NR) panels, each [k][NR] row-major (panel p holds columns p·NR .. p·NR + NR).
    panels: Vec<f32>,
}

impl PackedWeight {
    /// Packs the K x N matrix whose element (r, c) is `b[r * rs + c * cs]`. None where the
    /// packed kernel does not run (see the module comment): the caller keeps the general GEMM.
    pub fn new(b: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Option<PackedWeight> {
        if !kernel_available() || k == 0 || n == 0 {
            return None;
        }
        let panel_count = n.div_ceil(NR);
        let mut panels = vec![0.0f32; panel_count * k * NR];
        for (p, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            for (r, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, v) in row.iter_mut().enumerate().take(n - (p * NR).min(n)) {
                    *v = b[r * rs + (p * NR + j) * cs];
                }
            }
        }
        Some(PackedWeight { k, n, panels })
    }

    /// dst (+)= a · W[k_rows, :]. a is m x k_rows.len() with row stride `a_rs` (its column j
    /// multiplies packed row k_rows.start + j: a GRU's backward uses the r, z and n row blocks
    /// separately); dst is m x n with row stride `dst_rs`. One thread: the caller splits the
    /// batch over threads for the whole sequence (sequence.rs), not each step's product.
    #[allow(clippy::too_many_arguments)]
    pub fn mul(&self, dst: &mut [f32], dst_rs: usize, a: &[f32], a_rs: usize, m: usize, k_rows: std::ops::Range<usize>, accumulate: bool) {
        let (n, kl) = (self.n, k_rows.len());
        // Sizes come from validated dimensions; a mismatch here is a bug in the caller.
        assert!(k_rows.end <= self.k && kl > 0, "recurrent step product: rows {k_rows:?} of a packed weight with {} rows", self.k);
        assert!(m == 0 || ((m - 1) * a_rs + kl <= a.len() && (m - 1) * dst_rs + n <= dst.len()), "recurrent step product: operand out of bounds");
        if m == 0 {
            return;
        }
        let job = Job { dst: dst.as_mut_ptr(), dst_rs, a, a_rs, m, panels: &self.panels, k: self.k, k_rows, n, accumulate };
        // SAFETY: kernel_available() was true when this weight was packed (so the CPU has the
        // instructions), and the asserts above keep every access in bounds.
        unsafe { run_panels(&job, 0, n.div_ceil(NR)) }
    }
}

/// Whether this machine runs the packed kernel (x86-64 with FMA).
fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::simd::{level, SimdLevel};
        matches!(level(), SimdLevel::Avx2Fma | SimdLevel::Avx512)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One product's operands.
struct Job<'a> {
    dst: *mut f32,
    dst_rs: usize,
    a: &'a [f32],
    a_rs: usize,
    m: usize,
    panels: &'a [f32],
    k: usize,
    k_rows: std::ops::Range<usize>,
    n: usize,
    accumulate: bool,
}

/// Runs panels p0..p1 with the widest kernel the CPU has.
///
/// # Safety
/// As `PackedWeight::mul`: the CPU has FMA, and dst is valid for the panels' columns.
unsafe fn run_panels(job: &Job, p0: usize, p1: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::level() == crate::simd::SimdLevel::Avx512 {
            panels_avx512(job, p0, p1)
        } else {
            panels_avx2(job, p0, p1)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (job, p0, p1);
        unreachable!("the packed recurrent kernel runs only on x86-64 (PackedWeight::new)")
    }
}

// Rows per block: AVX-512 holds a 16-wide row in one register, so 8 rows give 8 independent FMA
// chains (enough to cover the FMA latency on two ports); AVX2 needs two registers per row, and
// 4 rows (8 accumulators + 2 loads of the panel row) fit its 16 registers without spilling.
// Written with intrinsics: the plain-loop version (arrays of accumulators, f32::mul_add) kept its
// accumulators in memory and ran slower than the general GEMM.

/// The largest row block of any kernel (the size of the store buffer).
const MAX_MR: usize = 8;

/// One instruction set's micro-kernel.
trait Kernel {
    /// Rows per full block.
    const MR: usize;
    /// Rows r..r+R of a times one packed panel (kl rows of NR) into out[..R].
    unsafe fn block<const R: usize>(job: &Job, r: usize, panel: *const f32, kl: usize, out: &mut [[f32; NR]; MAX_MR]);
}

#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx512 {
    const MR: usize = 8;
    #[inline(always)]
    unsafe fn block<const R: usize>(job: &Job, r: usize, panel: *const f32, kl: usize, out: &mut [[f32; NR]; MAX_MR]) {
        use std::arch::x86_64::*;
        let a = job.a.as_ptr().add(r * job.a_rs);
        let mut acc = [_mm512_setzero_ps(); R];
        for kk in 0..kl {
            let bv = _mm512_loadu_ps(panel.add(kk * NR));
            for (i, c) in acc.iter_mut().enumerate() {
                *c = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i * job.a_rs + kk)), bv, *c);
            }
        }
        for (o, v) in out.iter_mut().zip(&acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), *v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx2 {
    const MR: usize = 4;
    #[inline(always)]
    unsafe fn block<const R: usize>(job: &Job, r: usize, panel: *const f32, kl: usize, out: &mut [[f32; NR]; MAX_MR]) {
        use std::arch::x86_64::*;
        let a = job.a.as_ptr().add(r * job.a_rs);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for kk in 0..kl {
            let (b0, b1) = (_mm256_loadu_ps(panel.add(kk * NR)), _mm256_loadu_ps(panel.add(kk * NR + 8)));
            for (i, c) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(i * job.a_rs + kk));
                c[0] = _mm256_fmadd_ps(av, b0, c[0]);
                c[1] = _mm256_fmadd_ps(av, b1, c[1]);
            }
        }
        for (o, v) in out.iter_mut().zip(&acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(o.as_mut_ptr().add(8), v[1]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn panels_avx512(job: &Job, p0: usize, p1: usize) {
    panels::<Avx512>(job, p0, p1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panels_avx2(job: &Job, p0: usize, p1: usize) {
    panels::<Avx2>(job, p0, p1)
}

/// Panels p0..p1 in blocks of K::MR rows; rows past the last full block go one at a time.
#[inline(always)]
unsafe fn panels<K: Kernel>(job: &Job, p0: usize, p1: usize) {
    let kl = job.k_rows.len();
    let mut out = [[0.0f32; NR]; MAX_MR];
    for p in p0..p1 {
        let panel = job.panels[(p * job.k + job.k_rows.start) * NR..][..kl * NR].as_ptr();
        let (c0, width) = (p * NR, NR.min(job.n - p * NR));
        let mut r = 0;
        while r + K::MR <= job.m {
            // K::MR is 8 or 4: a constant row count per call, so the kernel's loops unroll.
            if K::MR == 8 {
                K::block::<8>(job, r, panel, kl, &mut out);
            } else {
                K::block::<4>(job, r, panel, kl, &mut out);
            }
            store(job, &out[..K::MR], r, c0, width);
            r += K::MR;
        }
        while r < job.m {
            K::block::<1>(job, r, panel, kl, &mut out);
            store(job, &out[..1], r, c0, width);
            r += 1;
        }
    }
}

/// Writes (or adds) the block's first `width` columns into dst at rows r.., columns c0...
#[inline(always)]
unsafe fn store(job: &Job, acc: &[[f32; NR]], r: usize, c0: usize, width: usize) {
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: PackedWeight::mul checked that rows < m of n columns fit in dst.
        let out = std::slice::from_raw_parts_mut(job.dst.add((r + i) * job.dst_rs + c0), width);
        if job.accumulate {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        } else {
            out.copy_from_slice(&row[..width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{set_level, SimdLevel};

    fn naive(a: &[f32], a_rs: usize, m: usize, b: &[f32], k0: usize, kl: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..kl).map(|t| a[i * a_rs + t] as f64 * b[(k0 + t) * n + j] as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    /// Odd sizes (rows past the last block of 8, a partial last panel, a row range of the weight),
    /// every kernel width, overwrite and accumulate.
    #[test]
    fn matches_a_plain_product_on_odd_sizes() {
        for level in [SimdLevel::Avx2Fma, SimdLevel::Avx512] {
            if set_level(level) != level {
                continue;
            }
            for &(m, k, n, k0, kl) in &[(1, 1, 1, 0, 1), (3, 7, 21, 0, 7), (13, 33, 50, 5, 20), (32, 128, 512, 0, 128), (9, 40, 16, 32, 8)] {
                let (a_rs, dst_rs) = (kl + 3, n + 2);
                let (a, b) = (values(m * a_rs, 1), values(k * n, 2));
                let packed = PackedWeight::new(&b, k, n, n, 1).expect("the packed kernel runs on this CPU");
                let want = naive(&a, a_rs, m, &b, k0, kl, n);
                for accumulate in [false, true] {
                    let mut dst = vec![0.5f32; m * dst_rs];
                    packed.mul(&mut dst, dst_rs, &a, a_rs, m, k0..k0 + kl, accumulate);
                    for i in 0..m {
                        for j in 0..dst_rs {
                            let got = dst[i * dst_rs + j];
                            let expect = if j >= n { 0.5 } else { want[i * n + j] + if accumulate { 0.5 } else { 0.0 } };
                            assert!((got - expect).abs() <= 1e-4 * (1.0 + expect.abs()), "{level:?} m{m} k{k} n{n} rows {k0}+{kl} acc={accumulate}: ({i},{j}) {got} vs {expect}");
                        }
                    }
                }
            }
        }
        set_level(SimdLevel::Avx512);
    }
}
