//! The W8A8 int8 tiles on wasm32 + SIMD128 (`Int8Path::Simd128`): the panel tile of panels.rs
//! and the row-dot tile of int8_gemm.rs, giving the same integers as every other path.
//!
//! WASM has no u8 x s8 dot product in plain SIMD128; `i32x4.dot_i16x8_s` multiplies 8 i16 pairs
//! and adds neighbours into 4 i32, exactly (|255 · -128| · 2 is far inside i32). So bytes are
//! widened to i16 first (V8: `pmovzxbw`/`pmovsxbw`, one instruction each), and the dot runs on
//! the widened halves.
//!
//! Panels: 16 bytes of a panel block are 4 lanes x 4 k. Widened, each half holds 2 lanes x 4 k,
//! and its dot with a row's 4 weights (widened, repeated twice) gives [lane 0: k0+k1, k2+k3,
//! lane 1: k0+k1, k2+k3]: pair sums, added into finished lane sums with two shuffles once per
//! tile, not per k. The 4 weight rows' widened quads are prepared once per chunk of k and reused by
//! every block of the tile. The loop keeps 8 accumulators + 2 widened activations + 1 weight
//! vector live: inside the 15 XMM registers V8 allocates (see gemm_simd128.rs).
//!
//! The relaxed-simd build runs this tile too. `i32x4.relaxed_dot_i8x16_i7x16_add_s` is exact only
//! when its second operand is 7-bit (0..=127; the top bit's meaning is left to the engine), and
//! neither the activations (stored as 1..=255) nor the weights (-128..=127) are. Split exactly
//! (u = (u & 127) + 128 · (u >> 7), two dot-adds per 16 bytes), the tile measured 2.6x SLOWER
//! than this one in Node 20 (Linear 784 -> 512 at batch 256: 12.0 ms against 4.6 ms, one run):
//! V8 there lowers each relaxed dot to several instructions rather than one VNNI `vpdpbusd`.

use super::panels::{LANES, STEP};
use core::arch::wasm32::*;

/// Weight rows per panel tile and panel blocks per tile (panels.rs's MR and NR).
const MR: usize = 4;
const NR: usize = 4;
/// k-steps (4 k each) of widened weights prepared at a time: 64 · 4 rows · 16 bytes = 4 KiB.
const KC: usize = 64;

/// panels.rs's tile: tile[r][j][l] += Σ (u8 panel byte) · (s8 weight byte) over k, for `nb`
/// blocks (tile starts at zero).
///
/// # Safety
/// Every weight pointer starts k4·4 readable bytes; the panels hold nb blocks of k4 steps, each
/// block `block_stride` bytes from the last.
#[inline(never)]
pub(super) unsafe fn panel_tile(p: *const u8, block_stride: usize, nb: usize, w: [*const i8; MR], k4: usize, tile: &mut [[[i32; LANES]; NR]; MR]) {
    let zero = i32x4_splat(0);
    let mut wide = [[zero; MR]; KC];
    let mut k0 = 0;
    while k0 < k4 {
        let kc = KC.min(k4 - k0);
        for (kq, quads) in wide.iter_mut().enumerate().take(kc) {
            for r in 0..MR {
                let four = (w[r].add((k0 + kq) * 4) as *const i32).read_unaligned();
                quads[r] = i16x8_extend_low_i8x16(i32x4_splat(four));
            }
        }
        for j in 0..nb {
            let block = p.add(j * block_stride + k0 * STEP);
            for q in 0..LANES / 4 {
                // lo: lanes 4q, 4q+1; hi: lanes 4q+2, 4q+3 (pair sums each).
                let (mut lo, mut hi) = ([zero; MR], [zero; MR]);
                for (kq, quads) in wide.iter().enumerate().take(kc) {
                    let v = v128_load(block.add(kq * STEP + q * 16) as *const v128);
                    let (a0, a1) = (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
                    for r in 0..MR {
                        lo[r] = i32x4_add(lo[r], i32x4_dot_i16x8(a0, quads[r]));
                        hi[r] = i32x4_add(hi[r], i32x4_dot_i16x8(a1, quads[r]));
                    }
                }
                for r in 0..MR {
                    let sums = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(lo[r], hi[r]), i32x4_shuffle::<1, 3, 5, 7>(lo[r], hi[r]));
                    let dst = tile[r][j].as_mut_ptr().add(q * 4) as *mut v128;
                    v128_store(dst, i32x4_add(v128_load(dst), sums));
                }
            }
        }
        k0 += kc;
    }
}

/// int8_gemm.rs's tile: exact Σ a·w for R activation rows by 4 weight rows, 16 k per step
/// (widened to i16, `i32x4.dot_i16x8_s`), the last k % 16 in scalar code.
///
/// # Safety
/// Every pointer must start k readable values.
#[inline(never)]
pub(super) unsafe fn row_tile<const R: usize>(a: [*const i8; R], w: [*const i8; 4], k: usize) -> [[i32; 4]; R] {
    let zero = i32x4_splat(0);
    let mut acc = [[zero; 4]; R];
    let whole = k / 16 * 16;
    let mut k0 = 0;
    while k0 < whole {
        let mut wv = [(zero, zero); 4];
        for c in 0..4 {
            let v = v128_load(w[c].add(k0) as *const v128);
            wv[c] = (i16x8_extend_low_i8x16(v), i16x8_extend_high_i8x16(v));
        }
        for r in 0..R {
            let v = v128_load(a[r].add(k0) as *const v128);
            let (a0, a1) = (i16x8_extend_low_i8x16(v), i16x8_extend_high_i8x16(v));
            for c in 0..4 {
                acc[r][c] = i32x4_add(acc[r][c], i32x4_add(i32x4_dot_i16x8(a0, wv[c].0), i32x4_dot_i16x8(a1, wv[c].1)));
            }
        }
        k0 += 16;
    }
    let mut out = [[0i32; 4]; R];
    for r in 0..R {
        for c in 0..4 {
            let v = acc[r][c];
            out[r][c] = i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v);
            for i in whole..k {
                out[r][c] += *a[r].add(i) as i32 * *w[c].add(i) as i32;
            }
        }
    }
    out
}
