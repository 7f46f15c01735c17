//! Kiln's own f32 GEMM for AVX-512 CPUs (x86-64 only), opt-in with KILN_GEMM=kiln while it is
//! measured against the `gemm` crate (the default): `dst (+)= scale · a · b` with a row-major
//! destination, any operand strides. Issue 18 asks for matmul-1024 within 10% of the FMA peak; the
//! crate stopped at 84% on 2 threads (quiet machine). The inner loop compiles to the intended
//! 2 loads + 14 broadcasts + 28 FMAs with no spills; whether the whole beats the crate could not
//! be told on the loaded machine of its first session (docs/families.md, "Native GEMM").
//!
//! Shape of the computation (BLIS's loops, turned for a row-major destination):
//! - the register tile is MR = 14 rows x NR = 32 columns: 28 accumulators + 2 vectors of b, 30 of
//!   the 32 zmm registers; each step of k loads 2 vectors of b and broadcasts 14 values of a
//!   straight from memory (the FMA's embedded broadcast), 28 FMAs for 16 loads;
//! - b is packed per thread into KC x NC blocks (1 MiB, kept in L2) of 32-column panels, each
//!   panel k-major so the kernel reads it as one stream;
//! - a is packed 14 rows at a time, row-major with a fixed row stride LDA (a compile-time
//!   constant, so every broadcast is one instruction with a constant displacement; LDA is not a
//!   multiple of 4 KiB's worth of floats, so the 14 rows fall in different L1 sets). Packing a
//!   row-major a is then 14 row copies, not a transpose;
//! - threads split the destination once per call into column ranges (or row ranges for tall,
//!   narrow products), each packing its own operands: one fork/join per call, no barrier. The
//!   `gemm` crate forks and joins four times per 1024 product (packing and compute per k block).
//! - the first k block of a non-accumulating call stores without reading dst, so the caller can
//!   hand over uninitialized memory (matmul.rs then skips its output's 4 MiB zero fill).

use crate::parallel::{self, SendPtr};
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the register tile.
const MR: usize = 14;
/// Columns of the register tile: two vectors.
const NR: usize = 32;
/// Largest k block: 14 rows of packed a (29 KiB at LDA) stay in the 48 KiB L1 while a panel of b
/// (64 KiB) streams past them from L2.
const KC: usize = 512;
/// Row stride of packed a: KC plus a cache line, so 14 rows map to 14 different L1 sets.
const LDA: usize = KC + 16;
/// Floats of one thread's packed b block: 1 MiB, half the L2 of the reference machine.
const B_BLOCK_FLOATS: usize = 1 << 18;

/// A strided read-only operand: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct MatRef {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// Whether this file's GEMM runs: on an AVX-512 CPU when `KILN_GEMM=kiln` (read once) asks for
/// it. Off by default: on the loaded 2-core machine it has not yet measured faster than the
/// `gemm` crate (docs/families.md, "Native GEMM"), and thin products (conv2d-a's input gradient,
/// 9 x 32 x 784) ran at half the crate's speed through it. `gemm_choice` compares the two.
pub fn available() -> bool {
    static ASKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    cpu_supports() && *ASKED.get_or_init(|| std::env::var_os("KILN_GEMM").is_some_and(|v| v == "kiln"))
}

/// Whether the CPU can run this file's GEMM (what `gemm` itself needs; tests and gemm_choice
/// call it directly).
pub fn cpu_supports() -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
}

/// Whether a product is big enough in every direction for 14 x 32 register tiles: thinner ones
/// (matrix-vector products, a few rows) would compute mostly padding; the `gemm` crate has
/// kernels for those.
pub fn suits(m: usize, n: usize, k: usize) -> bool {
    available() && m >= MR / 2 && n >= NR / 2 && k >= 4
}

/// `dst = scale · a · b`, or `dst += scale · a · b` with `accumulate`; a is m x k, b is k x n,
/// dst m x n with rows `dst_rs` floats apart and unit column stride. `threads` is the most
/// threads to use (1 = the calling thread only).
///
/// # Safety
/// `cpu_supports()` must be true; every element addressed through a and b must be readable, dst
/// valid for writes of its m x n elements (it may be uninitialized when !accumulate), and dst
/// must not overlap a or b.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, a: MatRef, b: MatRef, scale: f32, threads: usize) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(0.0);
            }
        }
        return;
    }
    let split = Split::new(m, n, threads);
    let jobs = split.jobs();
    // Raw pointers are not Sync: the closure shared by the threads carries them as SendPtr.
    let (dst, a_ptr, b_ptr) = (SendPtr(dst), SendPtr(a.ptr as *mut f32), SendPtr(b.ptr as *mut f32));
    let ((a_rs, a_cs), (b_rs, b_cs)) = ((a.rs, a.cs), (b.rs, b.cs));
    let job = |j: usize| {
        let (rows, cols) = split.job(j);
        let a = MatRef { ptr: a_ptr.ptr(), rs: a_rs, cs: a_cs };
        let b = MatRef { ptr: b_ptr.ptr(), rs: b_rs, cs: b_cs };
        // SAFETY: jobs write disjoint blocks of dst; the caller vouches for the rest.
        unsafe { gemm_block(rows, cols, k, dst.ptr(), dst_rs, accumulate, a, b, scale) };
    };
    if jobs == 1 {
        job(0);
    } else {
        parallel::for_each_chunk(jobs, jobs, |s, e| (s..e).for_each(job));
    }
}

/// How the destination is cut among threads: column ranges of whole 32-column panels, or row
/// ranges of whole 14-row tiles when the product has too few columns to keep every thread busy.
/// A column split packs all of a in every thread (cheap row copies), a row split all of b.
struct Split {
    m: usize,
    n: usize,
    by_columns: bool,
    parts: usize,
}

impl Split {
    fn new(m: usize, n: usize, threads: usize) -> Split {
        let (col_panels, row_tiles) = (n.div_ceil(NR), m.div_ceil(MR));
        // Columns when each thread gets at least two panels and the column split does not
        // repack a larger matrix than the row split would (m·k vs k·n).
        let by_columns = col_panels >= 2 * threads && (n >= m || row_tiles < 2 * threads);
        let units = if by_columns { col_panels } else { row_tiles };
        Split { m, n, by_columns, parts: threads.clamp(1, units.max(1)) }
    }

    fn jobs(&self) -> usize {
        self.parts
    }

    /// (row range, column range) of job `j`: whole tiles, shares differing by at most one tile.
    fn job(&self, j: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (len, unit) = if self.by_columns { (self.n, NR) } else { (self.m, MR) };
        let units = len.div_ceil(unit);
        let start = (units * j / self.parts * unit).min(len);
        let end = (units * (j + 1) / self.parts * unit).min(len);
        if self.by_columns {
            (0..self.m, start..end)
        } else {
            (start..end, 0..self.n)
        }
    }
}

thread_local! {
    /// Each thread's packing buffers (packed b block, packed a tile), kept between calls: a
    /// fresh 1 MiB per call would cost page faults on every product.
    static PACKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A slice of `len` floats aligned to 64 bytes inside `v` (grown when needed).
fn aligned(v: &mut Vec<f32>, len: usize) -> *mut f32 {
    if v.len() < len + 16 {
        *v = vec![0.0; len + 16];
    }
    let skip = v.as_ptr().align_offset(64).min(16);
    // SAFETY: skip + len <= v.len().
    unsafe { v.as_mut_ptr().add(skip) }
}

/// One thread's block: dst[rows, cols] (+)= scale · a[rows, :] · b[:, cols].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(rows: std::ops::Range<usize>, cols: std::ops::Range<usize>, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, a: MatRef, b: MatRef, scale: f32) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    // k in equal blocks of at most KC (1024 = 2 x 512, 600 = 2 x 300, not 512 + 88).
    let kc_max = k.div_ceil(k.div_ceil(KC));
    let nc_max = (B_BLOCK_FLOATS / kc_max / NR * NR).max(NR);
    PACKS.with(|packs| {
        let mut packs = packs.borrow_mut();
        let (b_buf, a_buf) = &mut *packs;
        let bp = aligned(b_buf, kc_max * nc_max.min(cols.len().next_multiple_of(NR)));
        let ap = aligned(a_buf, MR * LDA);
        for jc in cols.clone().step_by(nc_max) {
            let nc = nc_max.min(cols.end - jc);
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                pack_b(b, pc, kc, jc, nc, bp);
                let overwrite = pc == 0 && !accumulate;
                for ic in rows.clone().step_by(MR) {
                    let mr = MR.min(rows.end - ic);
                    pack_a(a, ic, mr, pc, kc, ap);
                    let (next, panels) = (ic + MR, nc.div_ceil(NR));
                    for q in 0..panels {
                        if next < rows.end {
                            prefetch_a(a, next, MR.min(rows.end - next), pc, kc, q, panels);
                        }
                        let c = dst.add(ic * dst_rs + jc + q * NR);
                        let tile = Tile { kc, a: ap, b: bp.add(q * kc * NR), c, ldc: dst_rs, cols: NR.min(nc - q * NR), scale, overwrite };
                        run_tile(mr, &tile);
                    }
                }
            }
        }
    });
}

/// b[pc..pc+kc, jc..jc+nc] into 32-column panels, each k-major ([kc][32]), zeros past nc.
unsafe fn pack_b(b: MatRef, pc: usize, kc: usize, jc: usize, nc: usize, bp: *mut f32) {
    for (q, j0) in (0..nc).step_by(NR).enumerate() {
        let w = NR.min(nc - j0);
        let panel = bp.add(q * kc * NR);
        let src = b.ptr.offset(pc as isize * b.rs + (jc + j0) as isize * b.cs);
        if b.cs == 1 {
            for p in 0..kc {
                let (s, d) = (src.offset(p as isize * b.rs), panel.add(p * NR));
                std::ptr::copy_nonoverlapping(s, d, w);
                std::ptr::write_bytes(d.add(w), 0, NR - w);
            }
        } else {
            // A transposed b (matmul's NT case): walk each column down its unit stride.
            for p in 0..kc {
                std::ptr::write_bytes(panel.add(p * NR + w), 0, NR - w);
            }
            for j in 0..w {
                let col = src.offset(j as isize * b.cs);
                for p in 0..kc {
                    *panel.add(p * NR + j) = *col.offset(p as isize * b.rs);
                }
            }
        }
    }
}

/// a[ic..ic+mr, pc..pc+kc] into ap, rows LDA apart.
unsafe fn pack_a(a: MatRef, ic: usize, mr: usize, pc: usize, kc: usize, ap: *mut f32) {
    let src = a.ptr.offset(ic as isize * a.rs + pc as isize * a.cs);
    if a.cs == 1 {
        for r in 0..mr {
            std::ptr::copy_nonoverlapping(src.offset(r as isize * a.rs), ap.add(r * LDA), kc);
        }
    } else {
        // A transposed a (matmul's TN case): read along k's rows, write each tile row.
        for p in 0..kc {
            let row = src.offset(p as isize * a.cs);
            for r in 0..mr {
                *ap.add(r * LDA + p) = *row.offset(r as isize * a.rs);
            }
        }
    }
}

/// Part `part` of `parts` of the rows of a that pack_a will copy next, prefetched into L2 while
/// the current tiles run, so the copy reads L2 rather than L3 (a is read once per k block per
/// thread: 4 MiB at 1024).
unsafe fn prefetch_a(a: MatRef, ic: usize, mr: usize, pc: usize, kc: usize, part: usize, parts: usize) {
    if a.cs != 1 {
        return;
    }
    let per_row = kc.div_ceil(16);
    let lines = mr * per_row;
    for line in lines * part / parts..lines * (part + 1) / parts {
        let (r, l) = (line / per_row, line % per_row);
        let p = a.ptr.wrapping_offset((ic + r) as isize * a.rs + (pc + 16 * l) as isize);
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
    }
}

/// One register tile's operands: packed a (MR rows at LDA), one packed b panel, and where its
/// `cols` (<= 32) columns of rows go.
struct Tile {
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    scale: f32,
    overwrite: bool,
}

/// The tile kernel for `rows` rows (a whole tile is 14; the last tile of a range has fewer).
unsafe fn run_tile(rows: usize, t: &Tile) {
    match rows {
        14 => tile::<14>(t),
        13 => tile::<13>(t),
        12 => tile::<12>(t),
        11 => tile::<11>(t),
        10 => tile::<10>(t),
        9 => tile::<9>(t),
        8 => tile::<8>(t),
        7 => tile::<7>(t),
        6 => tile::<6>(t),
        5 => tile::<5>(t),
        4 => tile::<4>(t),
        3 => tile::<3>(t),
        2 => tile::<2>(t),
        _ => tile::<1>(t),
    }
}

/// c[r, 0..cols] (+)= scale · Σ_p a[r·LDA + p] · b[p·32 + 0..cols] for R rows.
///
/// SAFETY: needs AVX-512F; a holds R rows of kc at LDA, b kc x 32 floats 64-byte aligned, c
/// R rows of `cols` floats at ldc.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(t: &Tile) {
    // The tile's destination lines are fetched while the FMAs run, not after them.
    for r in 0..R {
        _mm_prefetch::<_MM_HINT_T0>(t.c.add(r * t.ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(t.c.add(r * t.ldc + 16) as *const i8);
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        let b0 = _mm512_load_ps(b);
        let b1 = _mm512_load_ps(b.add(16));
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(r * LDA));
            acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
        }
        a = a.add(1);
        b = b.add(NR);
    }
    let masks: [__mmask16; 2] = [mask(t.cols), mask(t.cols.saturating_sub(16))];
    let scale = _mm512_set1_ps(t.scale);
    for (r, acc) in acc.iter().enumerate() {
        let row = t.c.add(r * t.ldc);
        for (h, &m) in masks.iter().enumerate() {
            let dst = row.add(16 * h);
            let mut v = _mm512_mul_ps(acc[h], scale);
            if !t.overwrite {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, dst));
            }
            _mm512_mask_storeu_ps(dst, m, v);
        }
    }
}

/// The first `n` lanes (n >= 16: all).
fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        !0
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a·b in f64 by the definition, operands through their strides.
    fn reference(m: usize, n: usize, k: usize, a: &[f32], (ars, acs): (usize, usize), b: &[f32], (brs, bcs): (usize, usize)) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * ars + p * acs] as f64 * b[p * brs + j * bcs] as f64).sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 9) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// Every layout (NN, NT, TN), edge tiles in both directions, k over one block, one and two
    /// threads, overwrite / accumulate / scale, a destination with a wider row stride.
    #[test]
    fn matches_the_definition() {
        if !cpu_supports() {
            return;
        }
        for &(m, n, k) in &[(1, 1, 1), (13, 31, 5), (14, 32, 512), (29, 70, 1030), (100, 3, 17), (3, 100, 600), (64, 64, 64)] {
            for threads in [1, 2, 3] {
                for (ta, tb) in [(false, false), (false, true), (true, false)] {
                    let (a, b) = (values(m * k, 1), values(k * n, 2));
                    let sa = if ta { (1, m) } else { (k, 1) };
                    let sb = if tb { (1, k) } else { (n, 1) };
                    let want = reference(m, n, k, &a, sa, &b, sb);
                    let ldc = n + 3;
                    let mut dst = vec![7.0f32; m * ldc];
                    let (ar, br) = (MatRef { ptr: a.as_ptr(), rs: sa.0 as isize, cs: sa.1 as isize }, MatRef { ptr: b.as_ptr(), rs: sb.0 as isize, cs: sb.1 as isize });
                    unsafe { gemm(m, n, k, dst.as_mut_ptr(), ldc, false, ar, br, 1.0, threads) };
                    unsafe { gemm(m, n, k, dst.as_mut_ptr(), ldc, true, ar, br, 0.5, threads) };
                    for i in 0..m {
                        for j in 0..n {
                            let (got, w) = (dst[i * ldc + j] as f64, 1.5 * want[i * n + j]);
                            assert!((got - w).abs() <= 1e-4 * (k as f64).sqrt() * (1.0 + w.abs()), "{m}x{n}x{k} t{threads} {ta}/{tb} ({i},{j}): {got} vs {w}");
                        }
                        assert_eq!(dst[i * ldc + n], 7.0, "the padding past n is untouched");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_k_zeroes_or_keeps() {
        if !cpu_supports() {
            return;
        }
        let mut dst = vec![3.0f32; 6];
        let none = MatRef { ptr: std::ptr::null(), rs: 0, cs: 0 };
        unsafe { gemm(2, 3, 0, dst.as_mut_ptr(), 3, true, none, none, 1.0, 2) };
        assert_eq!(dst, vec![3.0; 6]);
        unsafe { gemm(2, 3, 0, dst.as_mut_ptr(), 3, false, none, none, 1.0, 2) };
        assert_eq!(dst, vec![0.0; 6]);
    }
}
