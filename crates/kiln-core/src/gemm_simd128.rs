//! Kiln's own f32 GEMM for wasm32 + SIMD128: packed panels (the BLIS loop order) around a
//! register-blocked micro-kernel written for V8's code generator.
//!
//! Why not the `gemm` crate on wasm32: measured in Node and Chromium (1024x1024), its simd128 path
//! reached the same speed as tfjs-backend-wasm's XNNPACK, and it has no relaxed-simd kernel.
//! Two kernels, chosen at build time:
//! - with `relaxed-simd` (scripts/build-wasm.mjs builds that variant; V8 lowers
//!   `f32x4.relaxed_madd` to one FMA): 4 rows x 8 columns: 8 accumulators + 2 B vectors + 4
//!   broadcasts = 14 of the 15 XMM registers V8 allocates (xmm15 is its scratch register);
//! - plain SIMD128 (mul + add, which needs a temporary): 3 x 12, 9 + 3 + 1 + 1 = 14 registers.
//! The count assumes the worst case, every broadcast of a k step loaded before the first
//! multiply, because LLVM schedules them that way and V8 keeps its order: a 5 x 8 kernel then
//! needs 17 registers, spills one accumulator through the stack, and runs at half speed (seen with
//! `node --print-wasm-code`). Unrolling the k loop spills for the same reason.
//!
//! Blocking: a KC x NC panel of B is packed into NR-wide strips (the strip in use, 8 KiB, stays
//! in L1); an MC x KC block of A into MR-tall strips (L2). Edges are zero-padded in the packs and
//! the kernel writes edge tiles through a small buffer. Threads (the threaded build) split the
//! output into column or row ranges, each computed by one call of `gemm_single` on its own packs.

use core::arch::wasm32::*;
use std::cell::RefCell;

#[cfg(target_feature = "relaxed-simd")]
const MR: usize = 4;
#[cfg(target_feature = "relaxed-simd")]
const NV: usize = 2;
#[cfg(not(target_feature = "relaxed-simd"))]
const MR: usize = 3;
#[cfg(not(target_feature = "relaxed-simd"))]
const NV: usize = 3;
/// Columns of the micro-tile: NV vectors of 4 lanes.
const NR: usize = 4 * NV;
/// Depth of a packed panel: a B strip (KC x NR floats) is 8-12 KiB, inside the 32+ KiB L1.
const KC: usize = 256;
/// Rows of a packed A block (a multiple of both MRs): 120 x 256 floats = 120 KiB, inside L2.
const MC: usize = 120;
/// Columns of a packed B panel: 256 x 1024 floats = 1 MiB.
const NC: usize = 1024;

/// Strided read-only matrix: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct MatRef {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl MatRef {
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        self.ptr.offset(i as isize * self.rs + j as isize * self.cs)
    }
}

/// `acc += a * b`, fused where the build has relaxed-simd.
#[inline(always)]
fn madd(a: v128, b: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(f32x4_mul(a, b), acc)
    }
}

/// The MR x NR tile `c (+)= a_strip @ b_strip` over `kc` steps. `a`: kc groups of MR floats;
/// `b`: kc groups of NR floats; `c`: rows `ldc` apart. Not inlined: V8 allocates registers per
/// function, and the accumulators only stay in registers in a function this small.
#[inline(never)]
unsafe fn kernel(kc: usize, mut a: *const f32, mut b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    let mut acc = [[f32x4_splat(0.0); NV]; MR];
    for _ in 0..kc {
        let mut bv = [f32x4_splat(0.0); NV];
        for (j, v) in bv.iter_mut().enumerate() {
            *v = v128_load(b.add(4 * j) as *const v128);
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = v128_load32_splat(a.add(r) as *const u32);
            for (j, v) in row.iter_mut().enumerate() {
                *v = madd(av, bv[j], *v);
            }
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    for (r, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let p = c.add(r * ldc + 4 * j) as *mut v128;
            v128_store(p, if accumulate { f32x4_add(v128_load(p), *v) } else { *v });
        }
    }
}

/// Packs B[p0..p0+kc, j0..j0+nc] into NR-wide strips, each kc rows of NR floats, zero-padded.
unsafe fn pack_b(b: MatRef, p0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
    for (s, strip) in (0..nc).step_by(NR).zip(dst.chunks_exact_mut(kc * NR)) {
        let w = NR.min(nc - s);
        for p in 0..kc {
            let out = &mut strip[p * NR..(p + 1) * NR];
            let src = b.at(p0 + p, j0 + s);
            if b.cs == 1 && w == NR {
                for j in 0..NV {
                    v128_store(out.as_mut_ptr().add(4 * j) as *mut v128, v128_load(src.add(4 * j) as *const v128));
                }
            } else {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = if j < w { *src.offset(j as isize * b.cs) } else { 0.0 };
                }
            }
        }
    }
}

/// Packs A[i0..i0+mc, p0..p0+kc] into MR-tall strips, each kc columns of MR floats, zero-padded.
unsafe fn pack_a(a: MatRef, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    for (s, strip) in (0..mc).step_by(MR).zip(dst.chunks_exact_mut(kc * MR)) {
        let h = MR.min(mc - s);
        for r in 0..MR {
            if r < h {
                let src = a.at(i0 + s + r, p0);
                for p in 0..kc {
                    strip[p * MR + r] = *src.offset(p as isize * a.cs);
                }
            } else {
                for p in 0..kc {
                    strip[p * MR + r] = 0.0;
                }
            }
        }
    }
}

thread_local! {
    /// Packing buffers, kept per thread between calls so a training loop allocates them once.
    static PACKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `c[m, n] = a[m, k] @ b[k, n]` on the calling thread; `c` is row-major with row stride `ldc`.
///
/// # Safety
/// Every element of `a` (m x k) and `b` (k x n) addressed through their strides must be readable,
/// and `c` must be valid for writes of `m` rows of `n` floats, `ldc` apart.
pub unsafe fn gemm_single(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: *mut f32, ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            std::ptr::write_bytes(c.add(i * ldc), 0, n);
        }
        return;
    }
    PACKS.with(|packs| {
        let mut packs = packs.borrow_mut();
        let (ap, bp) = &mut *packs;
        let kc_max = KC.min(k);
        let a_len = MC.min(m).div_ceil(MR) * MR * kc_max;
        let b_len = NC.min(n).div_ceil(NR) * NR * kc_max;
        if ap.len() < a_len {
            ap.resize(a_len, 0.0);
        }
        if bp.len() < b_len {
            bp.resize(b_len, 0.0);
        }
        let mut edge = [0.0f32; MR * NR];
        for j0 in (0..n).step_by(NC) {
            let nc = NC.min(n - j0);
            for p0 in (0..k).step_by(KC) {
                let kc = KC.min(k - p0);
                let accumulate = p0 > 0;
                pack_b(b, p0, kc, j0, nc, bp);
                for i0 in (0..m).step_by(MC) {
                    let mc = MC.min(m - i0);
                    pack_a(a, i0, mc, p0, kc, ap);
                    for jr in (0..nc).step_by(NR) {
                        let w = NR.min(nc - jr);
                        let b_strip = bp.as_ptr().add(jr * kc);
                        for ir in (0..mc).step_by(MR) {
                            let h = MR.min(mc - ir);
                            let a_strip = ap.as_ptr().add(ir * kc);
                            let tile = c.add((i0 + ir) * ldc + j0 + jr);
                            if h == MR && w == NR {
                                kernel(kc, a_strip, b_strip, tile, ldc, accumulate);
                            } else {
                                kernel(kc, a_strip, b_strip, edge.as_mut_ptr(), NR, false);
                                for r in 0..h {
                                    for j in 0..w {
                                        let d = tile.add(r * ldc + j);
                                        let v = edge[r * NR + j];
                                        *d = if accumulate { *d + v } else { v };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// `c = a @ b` split over `threads` threads (parallel::for_each_chunk): by columns when the
/// output is at least as wide as it is tall, else by rows. Each range is a multiple of the tile.
///
/// # Safety
/// As `gemm_single`, with `ldc == n`.
pub unsafe fn gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: *mut f32, threads: usize) {
    let c = crate::parallel::SendPtr(c);
    let by_cols = n >= m;
    let (len, unit) = if by_cols { (n, NR) } else { (m, MR) };
    let chunks = threads.min(len.div_ceil(unit)).max(1);
    if chunks == 1 {
        return gemm_single(m, n, k, a, b, c.get(), n);
    }
    let units = len.div_ceil(unit);
    // Chunk boundaries in whole tiles so no tile is split between threads.
    let bound = move |i: usize| (units * i / chunks * unit).min(len);
    let (ap, bp) = (SendRef(a), SendRef(b));
    crate::parallel::for_each_chunk(chunks, chunks, move |s, e| {
        let (a, b) = (ap.get(), bp.get());
        for i in s..e {
            let (lo, hi) = (bound(i), bound(i + 1));
            if lo >= hi {
                continue;
            }
            if by_cols {
                let b_part = MatRef { ptr: b.at(0, lo), ..b };
                gemm_single(m, hi - lo, k, a, b_part, c.get().add(lo), n);
            } else {
                let a_part = MatRef { ptr: a.at(lo, 0), ..a };
                gemm_single(hi - lo, n, k, a_part, b, c.get().add(lo * n), n);
            }
        }
    });
}

/// A MatRef that may cross threads: the threads only read through it.
#[derive(Clone, Copy)]
struct SendRef(MatRef);
unsafe impl Send for SendRef {}
unsafe impl Sync for SendRef {}
impl SendRef {
    fn get(self) -> MatRef {
        self.0
    }
}
