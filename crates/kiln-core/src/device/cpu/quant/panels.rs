//! The W8A8 product at scale: int8 activations packed into 16-lane panels, multiplied by int8
//! weight rows broadcast 4 bytes at a time, the layout AVX-512 VNNI's `vpdpbusd` wants (oneDNN's
//! and fbgemm's u8 x s8 kernels pack the same way).
//!
//! A panel block holds 16 activation vectors (16 batch rows of a Linear, 16 output positions of a
//! conv) as [k/4][16 lanes][4 bytes]: one 64-byte load gives 4 consecutive k of every lane, and
//! `vpdpbusd(acc, block, broadcast(w[o, 4k..4k+4]))` adds those 4 products to each lane's i32.
//! A 4x4 tile (4 weight rows by 4 blocks = 64 lanes) keeps 16 accumulators in registers, reuses
//! every load 4 times, and ends with 16-lane vectors of finished sums: no horizontal reduction,
//! and a conv's outputs (channel-major) are stored 16 positions at a time.
//!
//! Activations are stored as u8 = a + 128 (`vpdpbusd` multiplies u8 by s8; a in [-127, 127], so
//! flipping the top bit is the shift), and every result takes `128 · Σ_k w[o, k]` back off
//! (`weight_sums`). k is padded to a multiple of 4 with zero weights, so the activation bytes of
//! the padding never count; lanes past the last vector are padding whose results are dropped.
//!
//! Paths (`Int8Path`): VNNI intrinsics; AVX2 intrinsics (i16 widening, `vpmaddwd`); wasm32's
//! SIMD128 (i16 widening, `i32x4.dot_i16x8_s`, simd128.rs); the portable tile (the scalar
//! fallback). All give the same
//! integers, which the tests check against an i64 reference on every path.

use super::int8_gemm::Int8Path;
use std::ops::Range;

/// Vectors per panel block (i32 lanes of a 512-bit register).
pub const LANES: usize = 16;
/// Bytes of a block per 4 k.
pub(super) const STEP: usize = LANES * 4;
/// Weight rows per tile.
const MR: usize = 4;
/// Panel blocks per tile.
const NR: usize = 4;

/// Bytes of the panels for `lanes` vectors of length k.
pub fn panel_len(lanes: usize, k: usize) -> usize {
    lanes.div_ceil(LANES) * k.div_ceil(4) * STEP
}

/// Where byte t of k-step `kq` of lane `lane` lives in panels of `k4` steps per block.
#[inline(always)]
pub fn panel_index(k4: usize, lane: usize, kq: usize, t: usize) -> usize {
    ((lane / LANES * k4 + kq) * LANES + lane % LANES) * 4 + t
}

/// Packs `rows` int8 vectors of length k (x [rows, k]) into panels (`panel_len(rows, k)` bytes),
/// shifted to u8. Padding bytes are 128 (a zero activation).
pub fn pack_rows(x: &[i8], rows: usize, k: usize, panels: &mut [u8]) {
    let k4 = k.div_ceil(4);
    assert!(x.len() >= rows * k && panels.len() >= panel_len(rows, k), "int8 panels: out of bounds");
    panels[..panel_len(rows, k)].fill(128);
    for (lane, row) in x[..rows * k].chunks_exact(k.max(1)).enumerate().take(rows) {
        for (kq, quad) in row.chunks(4).enumerate() {
            let at = panel_index(k4, lane, kq, 0);
            for (d, &v) in panels[at..at + quad.len()].iter_mut().zip(quad) {
                *d = (v as u8) ^ 0x80;
            }
        }
    }
}

/// Weight rows as the tile reads them: each row k4·4 bytes (zero-padded), `stride` apart.
#[derive(Clone, Copy)]
pub struct WeightRows<'a> {
    pub data: &'a [i8],
    pub rows: usize,
    pub k: usize,
    pub stride: usize,
}

impl WeightRows<'_> {
    /// Bytes a row must have readable: k rounded up to 4.
    pub fn padded_k(k: usize) -> usize {
        k.div_ceil(4) * 4
    }
}

/// Calls `store(o, first lane, sums)` with the exact Σ_k a[lane, k] · w[o, k] of 16 lanes from
/// `first lane` (lanes at or past `lanes` are padding: ignore them), for every weight row o in
/// `rows` and every block of the panels. `shift[o]` is `128 · Σ_k w[o, k]` (`Int8Weights::shifts`).
#[allow(clippy::too_many_arguments)]
pub fn gemm(path: Int8Path, panels: &[u8], lanes: usize, w: WeightRows, rows: Range<usize>, shift: &[i32], mut store: impl FnMut(usize, usize, &[i32; LANES])) {
    let k4 = w.k.div_ceil(4);
    let blocks = lanes.div_ceil(LANES);
    assert!(panels.len() >= blocks * k4 * STEP, "int8 panels: panels out of bounds");
    assert!(rows.end <= w.rows && shift.len() >= w.rows, "int8 panels: rows out of range");
    assert!(w.rows == 0 || (w.rows - 1) * w.stride + k4 * 4 <= w.data.len(), "int8 panels: weights out of bounds");
    if rows.is_empty() || blocks == 0 {
        return;
    }
    let block_stride = k4 * STEP;
    let mut b0 = 0;
    while b0 < blocks {
        let nb = NR.min(blocks - b0);
        let p = &panels[b0 * block_stride..];
        let mut o0 = rows.start;
        while o0 < rows.end {
            let w_rows: [usize; MR] = std::array::from_fn(|r| (o0 + r).min(rows.end - 1));
            let w_ptrs = w_rows.map(|o| w.data[o * w.stride..].as_ptr());
            let mut tile = [[[0i32; LANES]; NR]; MR];
            // SAFETY: the asserts above bound every read (k4 steps of nb blocks, k4·4 bytes per
            // weight row), and each path runs only where the CPU has it (Int8Path::current).
            unsafe {
                match (path, nb == NR) {
                    #[cfg(target_arch = "x86_64")]
                    (Int8Path::Vnni, true) => x86::tile_vnni::<NR>(p.as_ptr(), block_stride, w_ptrs, k4, &mut tile),
                    #[cfg(target_arch = "x86_64")]
                    (Int8Path::Vnni, false) => x86::tile_vnni::<1>(p.as_ptr(), block_stride, w_ptrs, k4, &mut tile),
                    #[cfg(target_arch = "x86_64")]
                    (Int8Path::Avx2, _) => x86::tile_avx2(p.as_ptr(), block_stride, nb, w_ptrs, k4, &mut tile),
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    (Int8Path::Simd128, _) => super::simd128::panel_tile(p.as_ptr(), block_stride, nb, w_ptrs, k4, &mut tile),
                    _ => tile_portable(p.as_ptr(), block_stride, nb, w_ptrs, k4, &mut tile),
                }
            }
            let step = if path == Int8Path::Vnni && nb < NR { 1 } else { nb };
            for r in 0..MR.min(rows.end - o0) {
                for j in 0..step {
                    let mut sums = tile[r][j];
                    for s in sums.iter_mut() {
                        *s -= shift[o0 + r];
                    }
                    store(o0 + r, (b0 + j) * LANES, &sums);
                }
            }
            o0 += MR;
        }
        b0 += if path == Int8Path::Vnni && nb < NR { 1 } else { nb };
    }
}

/// The portable tile: tile[r][j][l] = Σ (u8 panel byte) · (s8 weight byte) over k, for `nb` blocks.
///
/// # Safety
/// Every weight pointer starts k4·4 readable bytes; the panels hold nb blocks of k4 steps.
#[inline(always)]
unsafe fn tile_portable(p: *const u8, block_stride: usize, nb: usize, w: [*const i8; MR], k4: usize, tile: &mut [[[i32; LANES]; NR]; MR]) {
    let w = w.map(|ptr| std::slice::from_raw_parts(ptr, k4 * 4));
    for j in 0..nb {
        let block = std::slice::from_raw_parts(p.add(j * block_stride), k4 * STEP);
        for (r, wr) in w.iter().enumerate() {
            let acc = &mut tile[r][j];
            for (quad, wq) in block.chunks_exact(STEP).zip(wr.chunks_exact(4)) {
                for l in 0..LANES {
                    let a = &quad[l * 4..l * 4 + 4];
                    acc[l] += a[0] as i32 * wq[0] as i32 + a[1] as i32 * wq[1] as i32 + a[2] as i32 * wq[2] as i32 + a[3] as i32 * wq[3] as i32;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LANES, MR, NR, STEP};
    use std::arch::x86_64::*;

    /// MR weight rows by `nb` blocks with AVX2: 16 bytes of a block (4 lanes x 4 k) widen to
    /// i16 (the u8 side unsigned), `vpmaddwd` against the row's 4 weights (widened, repeated)
    /// gives each lane two i32 pair sums, added together at the end. Exact: a pair is at most
    /// 2·255·128 in magnitude (`vpmaddubsw` would saturate i16 there).
    ///
    /// # Safety
    /// As `tile_portable`, and the CPU must have avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile_avx2(p: *const u8, block_stride: usize, nb: usize, w: [*const i8; MR], k4: usize, tile: &mut [[[i32; LANES]; NR]; MR]) {
        for j in 0..nb {
            let block = p.add(j * block_stride);
            for r in 0..MR {
                let mut acc = [_mm256_setzero_si256(); 4];
                for kq in 0..k4 {
                    let wb = _mm256_cvtepi8_epi16(_mm_set1_epi32((w[r].add(kq * 4) as *const i32).read_unaligned()));
                    for (q, a) in acc.iter_mut().enumerate() {
                        let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(block.add(kq * STEP + q * 16) as *const __m128i));
                        *a = _mm256_add_epi32(*a, _mm256_madd_epi16(v, wb));
                    }
                }
                let mut pairs = [0i32; 2 * LANES];
                for (q, a) in acc.iter().enumerate() {
                    _mm256_storeu_si256(pairs.as_mut_ptr().add(q * 8) as *mut __m256i, *a);
                }
                for l in 0..LANES {
                    tile[r][j][l] = pairs[2 * l] + pairs[2 * l + 1];
                }
            }
        }
    }

    /// MR weight rows by B blocks with `vpdpbusd`: per 4 k, B panel loads and MR 4-byte
    /// broadcasts feed MR·B multiply-adds of 64 byte pairs each.
    ///
    /// # Safety
    /// The CPU must have avx512f, avx512bw and avx512vnni; as `tile_portable` for the memory.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_vnni<const B: usize>(p: *const u8, block_stride: usize, w: [*const i8; MR], k4: usize, tile: &mut [[[i32; LANES]; NR]; MR]) {
        // No closures or iterator adaptors: they would not inherit the target features.
        let mut acc = [[_mm512_setzero_si512(); B]; MR];
        let mut kq = 0;
        while kq < k4 {
            let mut pv = [_mm512_setzero_si512(); B];
            for j in 0..B {
                pv[j] = _mm512_loadu_si512(p.add(j * block_stride + kq * STEP) as *const _);
            }
            for r in 0..MR {
                let wb = _mm512_set1_epi32((w[r].add(kq * 4) as *const i32).read_unaligned());
                for j in 0..B {
                    acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], pv[j], wb);
                }
            }
            kq += 1;
        }
        for r in 0..MR {
            for j in 0..B {
                _mm512_storeu_si512(tile[r][j].as_mut_ptr() as *mut _, acc[r][j]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::int8_gemm::tests::{bytes, paths};
    use super::super::packed::Int8Weights;
    use super::*;

    /// Every path against an i64 reference, for a [m, k] activations and w [n, k] weights, with
    /// weight rows `rows` only.
    fn check(a: &[i8], w: &[i8], m: usize, n: usize, k: usize, rows: Range<usize>, label: &str) {
        let mut panels = vec![0u8; panel_len(m, k)];
        pack_rows(a, m, k, &mut panels);
        let packed = Int8Weights::new(w, n, k);
        let (wr, shift) = (packed.panel_rows(w), &packed.shifts);
        for path in paths() {
            let mut got = vec![None; m * n];
            gemm(path, &panels, m, wr, rows.clone(), shift, |o, l0, sums| {
                assert!(rows.contains(&o), "{label} {path:?}: row {o} outside {rows:?}");
                for (l, &v) in sums.iter().enumerate().filter(|(l, _)| l0 + l < m) {
                    assert!(got[(l0 + l) * n + o].replace(v).is_none(), "{label} {path:?}: ({}, {o}) stored twice", l0 + l);
                }
            });
            for i in 0..m {
                for j in 0..n {
                    let want: i64 = (0..k).map(|x| a[i * k + x] as i64 * w[j * k + x] as i64).sum();
                    let v = got[i * n + j];
                    if rows.contains(&j) {
                        assert_eq!(v.map(i64::from), Some(want), "{label} {path:?} m{m} n{n} k{k} at ({i}, {j})");
                    } else {
                        assert_eq!(v, None, "{label} {path:?}: column {j} outside {rows:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_path_is_exact_on_random_and_odd_sizes() {
        // Lane counts around the 16-lane block and the 64-lane tile, k around multiples of 4.
        for (t, &(m, n, k)) in [(1, 1, 1), (16, 4, 4), (17, 5, 3), (64, 8, 64), (65, 9, 65), (80, 6, 130), (200, 7, 17), (33, 13, 784), (130, 3, 255), (48, 17, 1000)].iter().enumerate() {
            let a = bytes(m * k, 2 * t as u64 + 1, -127, 127);
            let w = bytes(n * k, 2 * t as u64 + 2, -128, 127);
            check(&a, &w, m, n, k, 0..n, "random");
        }
        let (m, n, k) = (70, 11, 37);
        check(&bytes(m * k, 5, -127, 127), &bytes(n * k, 6, -128, 127), m, n, k, 3..9, "row range");
    }

    #[test]
    fn every_path_is_exact_at_the_extremes() {
        for &(m, n, k) in [(67, 6, 1031), (16, 4, 64), (3, 3, 7)].iter() {
            let (a_max, a_min) = (vec![127i8; m * k], vec![-127i8; m * k]);
            let (w_min, w_max) = (vec![-128i8; n * k], vec![127i8; n * k]);
            check(&a_max, &w_min, m, n, k, 0..n, "127 x -128");
            check(&a_min, &w_min, m, n, k, 0..n, "-127 x -128");
            check(&a_min, &w_max, m, n, k, 0..n, "-127 x 127");
            check(&vec![0; m * k], &w_max, m, n, k, 0..n, "zero activations");
            check(&a_max, &vec![0; n * k], m, n, k, 0..n, "zero weights");
        }
    }
}
