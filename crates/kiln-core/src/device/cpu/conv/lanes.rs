//! The lanes of the Winograd transforms (winograd.rs): four f32 (`F4`) in one SIMD128 register
//! on wasm32, sixteen (`F16`) in one AVX-512 register on x86-64, four in a plain array on other
//! CPUs (where the transforms are only tested). winograd.rs is written once over `Lanes`, with
//! `Lane` the type its build uses.

#[cfg(target_arch = "wasm32")]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(crate) struct F4(v128);

    impl super::Lanes for F4 {
        const WIDTH: usize = 4;
        fn splat(v: f32) -> F4 {
            F4(f32x4_splat(v))
        }
        unsafe fn load(p: *const f32) -> F4 {
            F4(v128_load(p as *const v128))
        }
        unsafe fn store(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        /// V8: one `shufps`.
        fn even(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<0, 2, 4, 6>(a.0, b.0))
        }
        fn odd(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<1, 3, 5, 7>(a.0, b.0))
        }
        fn zip_lo(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0))
        }
        fn zip_hi(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0))
        }
        unsafe fn store_first(self, p: *mut f32, n: usize) {
            let lanes = [f32x4_extract_lane::<0>(self.0), f32x4_extract_lane::<1>(self.0), f32x4_extract_lane::<2>(self.0), f32x4_extract_lane::<3>(self.0)];
            for (j, &v) in lanes.iter().enumerate().take(n) {
                *p.add(j) = v;
            }
        }
    }

    impl core::ops::Add for F4 {
        type Output = F4;
        fn add(self, o: F4) -> F4 {
            F4(f32x4_add(self.0, o.0))
        }
    }
    impl core::ops::Sub for F4 {
        type Output = F4;
        fn sub(self, o: F4) -> F4 {
            F4(f32x4_sub(self.0, o.0))
        }
    }
}

#[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
mod imp {
    #[derive(Clone, Copy)]
    pub(crate) struct F4([f32; 4]);

    impl super::Lanes for F4 {
        const WIDTH: usize = 4;
        fn splat(v: f32) -> F4 {
            F4([v; 4])
        }
        unsafe fn load(p: *const f32) -> F4 {
            F4(std::ptr::read_unaligned(p as *const [f32; 4]))
        }
        unsafe fn store(self, p: *mut f32) {
            std::ptr::write_unaligned(p as *mut [f32; 4], self.0)
        }
        fn even(a: F4, b: F4) -> F4 {
            F4([a.0[0], a.0[2], b.0[0], b.0[2]])
        }
        fn odd(a: F4, b: F4) -> F4 {
            F4([a.0[1], a.0[3], b.0[1], b.0[3]])
        }
        fn zip_lo(a: F4, b: F4) -> F4 {
            F4([a.0[0], b.0[0], a.0[1], b.0[1]])
        }
        fn zip_hi(a: F4, b: F4) -> F4 {
            F4([a.0[2], b.0[2], a.0[3], b.0[3]])
        }
        unsafe fn store_first(self, p: *mut f32, n: usize) {
            for (j, &v) in self.0.iter().enumerate().take(n) {
                *p.add(j) = v;
            }
        }
    }

    impl core::ops::Add for F4 {
        type Output = F4;
        fn add(self, o: F4) -> F4 {
            F4(std::array::from_fn(|i| self.0[i] + o.0[i]))
        }
    }
    impl core::ops::Sub for F4 {
        type Output = F4;
        fn sub(self, o: F4) -> F4 {
            F4(std::array::from_fn(|i| self.0[i] - o.0[i]))
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use imp::F4;

/// What the transforms ask of a lane type: element-wise add and subtract, and the shuffles that
/// split 2·WIDTH input columns into even and odd ones and zip two WIDTH outputs back.
pub(crate) trait Lanes: Copy + core::ops::Add<Output = Self> + core::ops::Sub<Output = Self> {
    const WIDTH: usize;
    fn splat(v: f32) -> Self;
    /// SAFETY: `p` must be valid for reading WIDTH floats (any alignment).
    unsafe fn load(p: *const f32) -> Self;
    /// SAFETY: `p` must be valid for writing WIDTH floats (any alignment).
    unsafe fn store(self, p: *mut f32);
    /// Lanes 0, 2, 4, ... of the 2·WIDTH floats a, b.
    fn even(a: Self, b: Self) -> Self;
    /// Lanes 1, 3, 5, ... of a, b.
    fn odd(a: Self, b: Self) -> Self;
    /// a0 b0 a1 b1 ... (the first halves of a and b interleaved).
    fn zip_lo(a: Self, b: Self) -> Self;
    /// The second halves of a and b interleaved.
    fn zip_hi(a: Self, b: Self) -> Self;
    /// SAFETY: `p` must be valid for writing `n` <= WIDTH floats.
    unsafe fn store_first(self, p: *mut f32, n: usize);
}

/// Sixteen f32 lanes in one AVX-512 register. Its methods are `inline(always)` and only run
/// inside winograd.rs's `#[target_feature(enable = "avx512f")]` functions, which is where the
/// intrinsics get inlined; winograd::applies checks the CPU first.
#[cfg(target_arch = "x86_64")]
mod wide {
    use core::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(crate) struct F16(__m512);

    /// Lane indices for _mm512_permutex2var_ps (16.. pick from the second operand).
    const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
    const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
    const ZIP_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
    const ZIP_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

    #[inline(always)]
    fn permute(a: F16, idx: &[i32; 16], b: F16) -> F16 {
        // SAFETY: AVX-512F is present wherever F16 is used (see the module comment).
        unsafe { F16(_mm512_permutex2var_ps(a.0, _mm512_loadu_si512(idx.as_ptr().cast()), b.0)) }
    }

    impl super::Lanes for F16 {
        const WIDTH: usize = 16;
        #[inline(always)]
        fn splat(v: f32) -> F16 {
            unsafe { F16(_mm512_set1_ps(v)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> F16 {
            F16(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        fn even(a: F16, b: F16) -> F16 {
            permute(a, &EVEN, b)
        }
        #[inline(always)]
        fn odd(a: F16, b: F16) -> F16 {
            permute(a, &ODD, b)
        }
        #[inline(always)]
        fn zip_lo(a: F16, b: F16) -> F16 {
            permute(a, &ZIP_LO, b)
        }
        #[inline(always)]
        fn zip_hi(a: F16, b: F16) -> F16 {
            permute(a, &ZIP_HI, b)
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, n: usize) {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, self.0)
        }
    }

    impl core::ops::Add for F16 {
        type Output = F16;
        #[inline(always)]
        fn add(self, o: F16) -> F16 {
            unsafe { F16(_mm512_add_ps(self.0, o.0)) }
        }
    }
    impl core::ops::Sub for F16 {
        type Output = F16;
        #[inline(always)]
        fn sub(self, o: F16) -> F16 {
            unsafe { F16(_mm512_sub_ps(self.0, o.0)) }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use wide::F16;
