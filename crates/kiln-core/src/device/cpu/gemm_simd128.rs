//! Kiln's own f32 GEMM for wasm32 + SIMD128: packed panels (the BLIS loop order) around a
//! register-blocked micro-kernel written for V8's code generator.
//!
//! Why not the `gemm` crate on wasm32: measured in Node and Chromium (1024x1024), its simd128 path
//! reached the same speed as tfjs-backend-wasm's XNNPACK, and it has no relaxed-simd kernel.
//!
//! The micro-kernel: a 4 x 8 tile of C in 8 accumulators; per k step one 16-byte load of the
//! packed A column (4 rows), whose lanes are splatted with shuffles (V8: one `vpshufd` each), two
//! loads of B, and 8 multiply-adds: `f32x4.relaxed_madd` in the relaxed-simd build (V8 emits one
//! `vfmadd231ps`), mul + add in the plain one. Measured in Node (CPU time, the tile in L1): 49
//! GFLOP/s relaxed and 39 plain, against 28-34 for tiles fed by `v128.load32_splat` broadcasts
//! (LLVM does not fold their constant offsets into the load, so each costs an extra address
//! instruction, and V8 keeps LLVM's order of loading every broadcast first: 5 x 8 and wider
//! tiles then spill an accumulator through the stack). Unrolling the k loop spills for the same
//! reason. 8 accumulators + 2 B + 1 A + 1 splat (+1 product in the plain build) fit V8's 15
//! allocatable XMM registers (xmm15 is its scratch register); read off `node --print-wasm-code`.
//!
//! Blocking: a KC x NC panel of B is packed into NR-wide strips (the strip in use, 8 KiB, stays
//! in L1); an MC x KC block of A into MR-tall strips (L2). Edges are zero-padded in the packs and
//! the kernel writes edge tiles through a small buffer. Threads (the threaded build) share a
//! packed column panel of B and take row blocks of C one at a time (`gemm`).

use core::arch::wasm32::*;
use std::cell::RefCell;

/// Rows of the micro-tile: one v128 of packed A.
const MR: usize = 4;
/// Columns of the micro-tile: two vectors of 4 lanes.
const NR: usize = 8;
/// Depth of a packed panel: a B strip (KC x NR floats) is 8 KiB, inside the 32+ KiB L1.
const KC: usize = 256;
/// Rows of a packed A block (a multiple of MR): 120 x 256 floats = 120 KiB, inside L2.
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
    let zero = f32x4_splat(0.0);
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21, mut c30, mut c31) = (zero, zero, zero, zero, zero, zero, zero, zero);
    for _ in 0..kc {
        let b0 = v128_load(b as *const v128);
        let b1 = v128_load(b.add(4) as *const v128);
        let av = v128_load(a as *const v128);
        let a0 = i32x4_shuffle::<0, 0, 0, 0>(av, av);
        c00 = madd(a0, b0, c00);
        c01 = madd(a0, b1, c01);
        let a1 = i32x4_shuffle::<1, 1, 1, 1>(av, av);
        c10 = madd(a1, b0, c10);
        c11 = madd(a1, b1, c11);
        let a2 = i32x4_shuffle::<2, 2, 2, 2>(av, av);
        c20 = madd(a2, b0, c20);
        c21 = madd(a2, b1, c21);
        let a3 = i32x4_shuffle::<3, 3, 3, 3>(av, av);
        c30 = madd(a3, b0, c30);
        c31 = madd(a3, b1, c31);
        a = a.add(MR);
        b = b.add(NR);
    }
    for (r, [v0, v1]) in [[c00, c01], [c10, c11], [c20, c21], [c30, c31]].into_iter().enumerate() {
        for (j, v) in [v0, v1].into_iter().enumerate() {
            let p = c.add(r * ldc + 4 * j) as *mut v128;
            v128_store(p, if accumulate { f32x4_add(v128_load(p), v) } else { v });
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
                for j in 0..NR / 4 {
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
    /// Packing buffers (A block, B panel), kept per thread between calls so a training loop
    /// allocates them once. Workers use only their A buffer: the caller's B panel is shared.
    static PACKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// One row block: `c[i0..i0+mc, j0..j0+nc] (+)= a[i0.., p0..p0+kc] @ packed B panel`, packing
/// the A block into `ap`. `accumulate`: add to c (every K panel after the first).
#[allow(clippy::too_many_arguments)]
unsafe fn row_block(a: MatRef, i0: usize, mc: usize, p0: usize, kc: usize, bp: *const f32, nc: usize, c: *mut f32, ldc: usize, accumulate: bool, ap: &mut Vec<f32>) {
    grow(ap, mc.div_ceil(MR) * MR * kc);
    pack_a(a, i0, mc, p0, kc, ap);
    let mut edge = [0.0f32; MR * NR];
    for jr in (0..nc).step_by(NR) {
        let w = NR.min(nc - jr);
        let b_strip = bp.add(jr * kc);
        for ir in (0..mc).step_by(MR) {
            let h = MR.min(mc - ir);
            let a_strip = ap.as_ptr().add(ir * kc);
            let tile = c.add((i0 + ir) * ldc + jr);
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

/// `c[m, n] = a[m, k] @ b[k, n]`, `c` row-major with row stride `n`, on up to `threads` threads.
///
/// One thread: for each KC x NC panel of B (packed once, kept in L2), every MC row block of C.
/// Several: the calling thread packs a whole column panel of B (all of K, NC wide) once, then the
/// threads take row blocks of C one at a time (parallel.rs), each packing its own A blocks and
/// running through all of K. One parallel job per column panel rather than per KC panel: each
/// job ends with the caller waiting for the slowest thread, which on a busy machine (a worker
/// that the OS has descheduled) costs milliseconds per job. Row blocks are small enough that
/// there are two per thread, so a delayed thread holds back less work.
///
/// # Safety
/// Every element of `a` (m x k) and `b` (k x n) addressed through their strides must be readable,
/// and `c` must be valid for writes of `m * n` floats.
pub unsafe fn gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: *mut f32, threads: usize) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        std::ptr::write_bytes(c, 0, m * n);
        return;
    }
    let block = if threads > 1 { m.div_ceil(2 * threads).div_ceil(MR) * MR } else { MC }.clamp(MR, MC);
    let blocks = m.div_ceil(block);
    PACKS.with(|packs| {
        let mut packs = packs.borrow_mut();
        let (ap, bp) = &mut *packs;
        if threads <= 1 || blocks == 1 {
            grow(bp, NC.min(n).div_ceil(NR) * NR * KC.min(k));
            for j0 in (0..n).step_by(NC) {
                let nc = NC.min(n - j0);
                for p0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - p0);
                    pack_b(b, p0, kc, j0, nc, bp);
                    for i0 in (0..m).step_by(block) {
                        row_block(a, i0, block.min(m - i0), p0, kc, bp.as_ptr(), nc, c.add(j0), n, p0 > 0, ap);
                    }
                }
            }
            return;
        }
        let nc_max = NC.min(n).div_ceil(NR) * NR;
        grow(bp, nc_max * k);
        for j0 in (0..n).step_by(NC) {
            let nc = NC.min(n - j0);
            let nc_pad = nc.div_ceil(NR) * NR;
            // The K panels of this column panel, one after another (panel p0 at p0 * nc_pad).
            for p0 in (0..k).step_by(KC) {
                pack_b(b, p0, KC.min(k - p0), j0, nc, &mut bp[p0 * nc_pad..]);
            }
            // Raw pointers in wrappers that may cross threads (the closure below runs on workers).
            let (panels, out, a_ref) = (crate::parallel::SendPtr(bp.as_mut_ptr()), crate::parallel::SendPtr(c.add(j0)), crate::parallel::SendView(a));
            crate::parallel::for_each_chunk(blocks, blocks, |s, e| {
                // Each thread's own A buffer (the caller's PACKS is borrowed above).
                CHUNK_PACK.with(|buf| {
                    let ap = &mut buf.borrow_mut();
                    for i in s..e {
                        let i0 = i * block;
                        for p0 in (0..k).step_by(KC) {
                            let panel = panels.ptr().add(p0 * nc_pad);
                            row_block(a_ref.get(), i0, block.min(m - i0), p0, KC.min(k - p0), panel, nc, out.ptr(), n, p0 > 0, ap);
                        }
                    }
                });
            });
        }
    });
}

thread_local! {
    /// The A block buffer of a parallel GEMM's chunks (PACKS is borrowed by the caller then).
    static CHUNK_PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}
