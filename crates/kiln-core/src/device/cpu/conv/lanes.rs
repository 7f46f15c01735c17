//! Four f32 lanes for the Winograd transforms (winograd.rs): one SIMD128 register on wasm32, a
//! plain array elsewhere. The transforms only run on wasm32 in Kiln, but the array version lets
//! the native `cargo test` check them against a float64 reference.

#[cfg(target_arch = "wasm32")]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(crate) struct F4(v128);

    impl F4 {
        pub fn splat(v: f32) -> F4 {
            F4(f32x4_splat(v))
        }
        /// SAFETY: `p` must be valid for reading 4 floats (any alignment).
        pub unsafe fn load(p: *const f32) -> F4 {
            F4(v128_load(p as *const v128))
        }
        /// SAFETY: `p` must be valid for writing 4 floats (any alignment).
        pub unsafe fn store(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        /// Lanes 0, 2, 4, 6 of the 8 floats a, b (V8: one `shufps`).
        pub fn even(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<0, 2, 4, 6>(a.0, b.0))
        }
        /// Lanes 1, 3, 5, 7 of the 8 floats a, b.
        pub fn odd(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<1, 3, 5, 7>(a.0, b.0))
        }
        /// a0 b0 a1 b1.
        pub fn zip_lo(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0))
        }
        /// a2 b2 a3 b3.
        pub fn zip_hi(a: F4, b: F4) -> F4 {
            F4(i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0))
        }
        pub fn to_array(self) -> [f32; 4] {
            [f32x4_extract_lane::<0>(self.0), f32x4_extract_lane::<1>(self.0), f32x4_extract_lane::<2>(self.0), f32x4_extract_lane::<3>(self.0)]
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

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    #[derive(Clone, Copy)]
    pub(crate) struct F4([f32; 4]);

    impl F4 {
        pub fn splat(v: f32) -> F4 {
            F4([v; 4])
        }
        /// SAFETY: `p` must be valid for reading 4 floats.
        pub unsafe fn load(p: *const f32) -> F4 {
            F4(std::ptr::read_unaligned(p as *const [f32; 4]))
        }
        /// SAFETY: `p` must be valid for writing 4 floats.
        pub unsafe fn store(self, p: *mut f32) {
            std::ptr::write_unaligned(p as *mut [f32; 4], self.0)
        }
        pub fn even(a: F4, b: F4) -> F4 {
            F4([a.0[0], a.0[2], b.0[0], b.0[2]])
        }
        pub fn odd(a: F4, b: F4) -> F4 {
            F4([a.0[1], a.0[3], b.0[1], b.0[3]])
        }
        pub fn zip_lo(a: F4, b: F4) -> F4 {
            F4([a.0[0], b.0[0], a.0[1], b.0[1]])
        }
        pub fn zip_hi(a: F4, b: F4) -> F4 {
            F4([a.0[2], b.0[2], a.0[3], b.0[3]])
        }
        pub fn to_array(self) -> [f32; 4] {
            self.0
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

pub(crate) use imp::F4;
