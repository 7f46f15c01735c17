//! int8 x int8 -> i32 row-dot tiles for W8A8 inference below a panel's worth of vectors (w8a8.rs
//! uses them for a Linear of fewer than 16 rows; panels.rs does the rest), the instruction path
//! choice shared by both, and the per-call activation quantization.
//!
//! Both operands are row-major along the reduction axis k: `a` rows are activation vectors (a
//! Linear's input rows), `w` rows are the weight rows. Keeping the weights in their stored layout
//! means no per-call packing, which matters at batch 1 where packing would cost as much as the
//! product itself.
//!
//! Three paths, chosen at run time (`Int8Path::current`), all giving the same integers:
//! - VNNI (AVX-512 `vpdpbusd`): multiplies u8 by s8, four pairs per i32 lane. Activations are
//!   s8 in [-127, 127]; flipping the top bit makes them u8 = a + 128, so the kernel computes
//!   Σ (a + 128)·w and the caller's `weight_sums` take 128·Σ w back off.
//! - AVX2: widens both to i16 and multiplies with `vpmaddwd` (exact; `vpmaddubsw` would saturate
//!   255·127·2 past i16).
//! - SIMD128 (wasm32): widens both to i16 and multiplies with `i32x4.dot_i16x8_s` (simd128.rs).
//! - scalar: plain i32 loops, the fallback of other CPUs.
//!
//! A 4x4 tile (four activation rows by four weight rows) is the unit of work: each loaded vector
//! feeds four multiply-adds. The last tile of activation rows has only the rows left (1 to 4:
//! a batch-1 product is a GEMV, not 4 copies of one row); edge tiles of weight rows repeat the
//! last row and drop the extra results.

/// Which instruction set the int8 product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Path {
    Scalar,
    Avx2,
    Vnni,
    /// wasm32 with SIMD128 (the only path there besides scalar).
    Simd128,
}

impl Int8Path {
    /// The best path this CPU has, unless `KILN_INT8_PATH` (scalar | avx2 | vnni) asks for a lesser
    /// one: tests force every path on one machine that way. A path the CPU lacks is never taken.
    /// Read per call (an environment read is ~100 ns against microseconds of work) so a test can
    /// switch paths inside one process.
    pub fn current() -> Int8Path {
        let best = Int8Path::detected();
        match std::env::var_os("KILN_INT8_PATH") {
            Some(v) if v == "scalar" => Int8Path::Scalar,
            Some(v) if v == "avx2" && best == Int8Path::Vnni => Int8Path::Avx2,
            _ => best,
        }
    }

    /// The best path the CPU supports.
    pub fn detected() -> Int8Path {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512f") {
                return Int8Path::Vnni;
            }
            if is_x86_feature_detected!("avx2") {
                return Int8Path::Avx2;
            }
        }
        // Compiled in, not detected: a wasm32 module with simd128 does not load without it.
        if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            return Int8Path::Simd128;
        }
        Int8Path::Scalar
    }

    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Scalar => "scalar",
            Int8Path::Avx2 => "avx2",
            Int8Path::Vnni => "avx512-vnni",
            Int8Path::Simd128 => "simd128",
        }
    }
}

/// Rows of int8 values, `stride` apart, `k` used per row.
#[derive(Clone, Copy)]
pub struct Int8Rows<'a> {
    pub data: &'a [i8],
    pub rows: usize,
    pub k: usize,
    pub stride: usize,
}

impl Int8Rows<'_> {
    fn check(&self, what: &str) {
        assert!(self.rows == 0 || (self.rows - 1) * self.stride + self.k <= self.data.len(), "int8 gemm: {what} out of bounds");
    }
}

/// Σ_k w[j, k] per weight row: what the VNNI path's +128 shift adds to every dot product, divided
/// by 128. Needed only on that path (see `Int8Path`).
pub fn weight_sums(w: Int8Rows) -> Vec<i32> {
    w.check("weights");
    (0..w.rows).map(|j| row_sum(&w.data[j * w.stride..j * w.stride + w.k])).collect()
}

crate::multiversion! {
    /// Σ v as i32 (vectorizes: i8 -> i32 widening adds).
    fn row_sum(v: &[i8]) -> i32 {
        let mut acc = [0i32; 16];
        let chunks = v.chunks_exact(16);
        let tail: i32 = chunks.remainder().iter().map(|&x| x as i32).sum();
        for c in chunks {
            for i in 0..16 {
                acc[i] += c[i] as i32;
            }
        }
        acc.iter().sum::<i32>() + tail
    }
}

/// Calls `store(i, j, Σ_k a[i, k] · w[j, k])` for every i < a.rows, j in `cols`, exactly, on
/// `path`. `sums` are `weight_sums(w)` (all rows of w) on the VNNI path, and unused otherwise.
/// Activations must be in [-127, 127] (the VNNI shift needs -128 unused).
pub fn gemm(path: Int8Path, a: Int8Rows, w: Int8Rows, cols: std::ops::Range<usize>, sums: &[i32], mut store: impl FnMut(usize, usize, i32)) {
    assert_eq!(a.k, w.k, "int8 gemm: reduction lengths differ");
    assert!(cols.end <= w.rows && (path != Int8Path::Vnni || sums.len() >= w.rows), "int8 gemm: columns out of range");
    a.check("activations");
    w.check("weights");
    if a.rows == 0 || cols.is_empty() {
        return;
    }
    let mut i0 = 0;
    while i0 < a.rows {
        // Tiles of up to 4 activation rows: a batch-1 product runs 1-row tiles (a GEMV) rather
        // than 4 copies of its one row.
        match a.rows - i0 {
            1 => row_tiles::<1>(path, a, w, i0, cols.clone(), sums, &mut store),
            2 => row_tiles::<2>(path, a, w, i0, cols.clone(), sums, &mut store),
            3 => row_tiles::<3>(path, a, w, i0, cols.clone(), sums, &mut store),
            _ => row_tiles::<4>(path, a, w, i0, cols.clone(), sums, &mut store),
        }
        i0 += 4;
    }
}

/// Activation rows i0..i0+R against weight rows `cols`, 4 at a time (`gemm`'s contract).
fn row_tiles<const R: usize>(path: Int8Path, a: Int8Rows, w: Int8Rows, i0: usize, cols: std::ops::Range<usize>, sums: &[i32], store: &mut impl FnMut(usize, usize, i32)) {
    let k = a.k;
    let a_ptrs: [*const i8; R] = std::array::from_fn(|r| a.data[(i0 + r) * a.stride..].as_ptr());
    let mut j0 = cols.start;
    while j0 < cols.end {
        let w_rows: [usize; 4] = std::array::from_fn(|c| (j0 + c).min(cols.end - 1));
        let w_ptrs = w_rows.map(|j| w.data[j * w.stride..].as_ptr());
        // SAFETY: every pointer starts a row with k readable values (checked by `gemm`), and
        // each path is taken only when the CPU reports its features (Int8Path::current).
        let tile = unsafe {
            match path {
                #[cfg(target_arch = "x86_64")]
                Int8Path::Vnni => x86::tile_vnni(a_ptrs, w_ptrs, k),
                #[cfg(target_arch = "x86_64")]
                Int8Path::Avx2 => x86::tile_avx2(a_ptrs, w_ptrs, k),
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Int8Path::Simd128 => super::simd128::row_tile(a_ptrs, w_ptrs, k),
                _ => tile_scalar(a_ptrs, w_ptrs, k),
            }
        };
        for (r, row) in tile.iter().enumerate() {
            for c in 0..4.min(cols.end - j0) {
                let shift = if path == Int8Path::Vnni { 128 * sums[j0 + c] } else { 0 };
                store(i0 + r, j0 + c, row[c] - shift);
            }
        }
        j0 += 4;
    }
}

/// The portable tile: exact signed dot products.
///
/// # Safety
/// Every pointer must start k readable values.
unsafe fn tile_scalar<const R: usize>(a: [*const i8; R], w: [*const i8; 4], k: usize) -> [[i32; 4]; R] {
    let a = a.map(|p| std::slice::from_raw_parts(p, k));
    let w = w.map(|p| std::slice::from_raw_parts(p, k));
    std::array::from_fn(|r| std::array::from_fn(|c| dot(a[r], w[c])))
}

fn dot(a: &[i8], w: &[i8]) -> i32 {
    a.iter().zip(w).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Σ (a + 128)·w for an R x 4 tile with `vpdpbusd`, 64 bytes of k per step; the last partial
    /// step loads through a mask, so rows need no padding (masked-off bytes read as 0).
    ///
    /// # Safety
    /// The CPU must have avx512f, avx512bw and avx512vnni; every pointer starts k readable bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
    pub(super) unsafe fn tile_vnni<const R: usize>(a: [*const i8; R], w: [*const i8; 4], k: usize) -> [[i32; 4]; R] {
        // No closures here: a closure would not get this function's target features, and its
        // intrinsics would turn into calls.
        let flip = _mm512_set1_epi8(-128);
        let zero = _mm512_setzero_si512();
        let mut acc = [[zero; 4]; R];
        let mut k0 = 0;
        while k0 < k {
            let left = k - k0;
            let mask: __mmask64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
            let mut wv = [zero; 4];
            for c in 0..4 {
                wv[c] = _mm512_maskz_loadu_epi8(mask, w[c].add(k0));
            }
            for r in 0..R {
                // a + 128 as u8 is a with its top bit flipped; masked-off bytes become 128 but
                // meet zero weights.
                let av = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, a[r].add(k0)), flip);
                for c in 0..4 {
                    acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], av, wv[c]);
                }
            }
            k0 += 64;
        }
        let mut out = [[0i32; 4]; R];
        for r in 0..R {
            let mut halves = [_mm256_setzero_si256(); 4];
            for c in 0..4 {
                halves[c] = _mm256_add_epi32(_mm512_castsi512_si256(acc[r][c]), _mm512_extracti64x4_epi64::<1>(acc[r][c]));
            }
            out[r] = hsum4(halves);
        }
        out
    }

    /// Exact Σ a·w for an R x 4 tile: 16 bytes of k per step, widened to i16 and multiplied with
    /// `vpmaddwd` (i16·i16 pairs summed into i32); the last k % 16 values in scalar code.
    ///
    /// # Safety
    /// The CPU must have avx2; every pointer starts k readable bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile_avx2<const R: usize>(a: [*const i8; R], w: [*const i8; 4], k: usize) -> [[i32; 4]; R] {
        let zero = _mm256_setzero_si256();
        let mut acc = [[zero; 4]; R];
        let whole = k / 16 * 16;
        let mut k0 = 0;
        while k0 < whole {
            let mut wv = [zero; 4];
            for c in 0..4 {
                wv[c] = _mm256_cvtepi8_epi16(_mm_loadu_si128(w[c].add(k0) as *const __m128i));
            }
            for r in 0..R {
                let av = _mm256_cvtepi8_epi16(_mm_loadu_si128(a[r].add(k0) as *const __m128i));
                for c in 0..4 {
                    acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(av, wv[c]));
                }
            }
            k0 += 16;
        }
        let mut out = [[0i32; 4]; R];
        for r in 0..R {
            out[r] = hsum4(acc[r]);
            for c in 0..4 {
                for i in whole..k {
                    out[r][c] += *a[r].add(i) as i32 * *w[c].add(i) as i32;
                }
            }
        }
        out
    }

    /// The four horizontal sums of four 8-lane vectors [Σv0, Σv1, Σv2, Σv3].
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn hsum4(v: [__m256i; 4]) -> [i32; 4] {
        let ab = _mm256_hadd_epi32(v[0], v[1]);
        let cd = _mm256_hadd_epi32(v[2], v[3]);
        let abcd = _mm256_hadd_epi32(ab, cd);
        let sum = _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256::<1>(abcd));
        let mut out = [0i32; 4];
        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, sum);
        out
    }
}

/// The scale of a vector whose largest magnitude is `max` (`nan` true if it held NaN or ±inf),
/// and the factor that maps it to [-127, 127]. A non-finite vector gets a NaN scale, so its
/// outputs are NaN rather than silently finite; an all-zero vector gets scale 0 (its values are 0).
fn scale_of(max: f32, nan: bool) -> (f32, f32) {
    if nan {
        (f32::NAN, 0.0)
    } else if max == 0.0 {
        (0.0, 0.0)
    } else {
        (max / 127.0, 127.0 / max)
    }
}

crate::multiversion! {
    /// Per-call dynamic quantization of `rows` contiguous float vectors of `k` (x [rows, k]) to
    /// int8 q [rows, k] with one scale each: max|x| / 127, symmetric, rounding half to even.
    /// Both passes are plain lane-wise arithmetic so they vectorize on every target: the max is a
    /// compare-and-select (`f32::max` adds NaN fix-ups), and the rounding adds 1.5 · 2^23, which
    /// leaves the integer, rounded half to even by the FPU, in the low mantissa bits (|v| <= 127
    /// here, far inside the trick's 2^22 range).
    pub fn quantize_rows(x: &[f32], rows: usize, k: usize, q: &mut [i8], scales: &mut [f32]) {
        const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
        for i in 0..rows {
            let row = &x[i * k..(i + 1) * k];
            let (mut max, mut poison) = ([0.0f32; 16], [0.0f32; 16]);
            let chunks = row.chunks_exact(16);
            for &v in chunks.remainder() {
                max[0] = if v.abs() > max[0] { v.abs() } else { max[0] };
                poison[0] += v - v; // 0, or NaN for NaN and ±inf
            }
            for c in chunks {
                for l in 0..16 {
                    let a = c[l].abs();
                    max[l] = if a > max[l] { a } else { max[l] };
                    poison[l] += c[l] - c[l];
                }
            }
            let (scale, inv) = scale_of(max.iter().fold(0.0f32, |m, &v| m.max(v)), poison.iter().sum::<f32>().is_nan());
            scales[i] = scale;
            for (d, &v) in q[i * k..(i + 1) * k].iter_mut().zip(row) {
                // A NaN row (inv 0 times inf or NaN) lands anywhere in range; its scale is NaN.
                let r = ((v * inv + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
                *d = r.clamp(-127, 127) as i8;
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so failures reproduce.
    pub(crate) fn bytes(n: usize, seed: u64, lo: i32, hi: i32) -> Vec<i8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (lo + (s % (hi - lo + 1) as u64) as i32) as i8
            })
            .collect()
    }

    /// Every path this CPU has, the scalar fallback included.
    pub(crate) fn paths() -> Vec<Int8Path> {
        let best = Int8Path::detected();
        let lesser: &[Int8Path] = match best {
            Int8Path::Vnni => &[Int8Path::Avx2],
            _ => &[],
        };
        [Int8Path::Scalar].iter().chain(lesser).copied().chain((best != Int8Path::Scalar).then_some(best)).collect()
    }

    /// Runs every path the CPU has on (a [m, k], w [n, k]) and compares each i32 with a plain
    /// i64 reference.
    fn check(a: &[i8], w: &[i8], m: usize, n: usize, k: usize, label: &str) {
        let ar = Int8Rows { data: a, rows: m, k, stride: k };
        let wr = Int8Rows { data: w, rows: n, k, stride: k };
        let sums = weight_sums(wr);
        for path in paths() {
            let mut got = vec![i32::MIN; m * n];
            gemm(path, ar, wr, 0..n, &sums, |i, j, v| {
                assert_eq!(got[i * n + j], i32::MIN, "{label} {path:?}: ({i}, {j}) stored twice");
                got[i * n + j] = v;
            });
            for i in 0..m {
                for j in 0..n {
                    let want: i64 = (0..k).map(|x| a[i * k + x] as i64 * w[j * k + x] as i64).sum();
                    assert_eq!(got[i * n + j] as i64, want, "{label} {path:?} m{m} n{n} k{k} at ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn every_path_is_exact_on_random_and_odd_sizes() {
        assert!(!paths().is_empty());
        for (t, &(m, n, k)) in [(1, 1, 1), (1, 5, 3), (3, 7, 63), (4, 4, 64), (5, 9, 65), (9, 6, 130), (2, 3, 784), (7, 13, 17), (6, 2, 255), (1, 17, 1000)].iter().enumerate() {
            let a = bytes(m * k, 2 * t as u64 + 1, -127, 127);
            let w = bytes(n * k, 2 * t as u64 + 2, -127, 127);
            check(&a, &w, m, n, k, "random");
        }
    }

    #[test]
    fn every_path_is_exact_at_the_extremes() {
        // Largest magnitudes: 127 · -128 and -127 · -128 (weights may hold -128 if a caller made
        // them by hand), long rows so the i32 sums reach ~16 million, and all zeros.
        for &(m, n, k) in [(5, 6, 1031), (4, 4, 64), (1, 3, 7)].iter() {
            let a_max = vec![127i8; m * k];
            let a_min = vec![-127i8; m * k];
            let w_min = vec![-128i8; n * k];
            let w_max = vec![127i8; n * k];
            check(&a_max, &w_min, m, n, k, "127 x -128");
            check(&a_min, &w_min, m, n, k, "-127 x -128");
            check(&a_min, &w_max, m, n, k, "-127 x 127");
            check(&vec![0; m * k], &w_max, m, n, k, "zero activations");
            check(&a_max, &vec![0; n * k], m, n, k, "zero weights");
        }
    }

    #[test]
    fn column_ranges_and_strides_are_respected() {
        let (m, n, k, stride) = (6, 10, 70, 80);
        let a = bytes(m * stride, 7, -127, 127);
        let w = bytes(n * stride, 8, -128, 127);
        let ar = Int8Rows { data: &a, rows: m, k, stride };
        let wr = Int8Rows { data: &w, rows: n, k, stride };
        let sums = weight_sums(wr);
        for path in paths() {
            let mut seen = 0;
            gemm(path, ar, wr, 3..9, &sums, |i, j, v| {
                assert!((3..9).contains(&j), "{path:?} stored column {j}");
                let want: i32 = (0..k).map(|x| a[i * stride + x] as i32 * w[j * stride + x] as i32).sum();
                assert_eq!(v, want, "{path:?} ({i}, {j})");
                seen += 1;
            });
            assert_eq!(seen, m * 6, "{path:?}");
        }
    }

    #[test]
    fn quantization_scales_by_max_abs_and_flags_non_finite() {
        let x = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0, 1.0, f32::NAN, 2.0];
        let (mut q, mut s) = (vec![0i8; 9], vec![0f32; 3]);
        quantize_rows(&x, 3, 3, &mut q, &mut s);
        assert_eq!(&q[..3], &[64, -127, 32]);
        assert_eq!(s[0], 1.0 / 127.0);
        assert_eq!((&q[3..6], s[1]), (&[0i8, 0, 0][..], 0.0));
        assert!(s[2].is_nan());
    }
}
