//! Run-time choice of instruction set. Kernels are written once as plain `#[inline(always)]`
//! loops; `multiversion!` compiles each for AVX-512, AVX2+FMA and a portable fallback and picks
//! one by CPU detection at the first call (users' CPUs vary, so no compile-time target-cpu).

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    Scalar = 1,
    Avx2Fma = 2,
    Avx512 = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

pub fn level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        1 => SimdLevel::Scalar,
        2 => SimdLevel::Avx2Fma,
        3 => SimdLevel::Avx512,
        _ => {
            let detected = detect();
            LEVEL.store(detected as u8, Ordering::Relaxed);
            detected
        }
    }
}

/// Forces a level (tests use it to cover every code path on one machine). Levels the CPU lacks
/// are clamped to what it has, so this can never cause an illegal instruction.
pub fn set_level(requested: SimdLevel) -> SimdLevel {
    let chosen = if requested as u8 > detect() as u8 { detect() } else { requested };
    LEVEL.store(chosen as u8, Ordering::Relaxed);
    chosen
}

fn detect() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") && is_x86_feature_detected!("fma") {
            return SimdLevel::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2Fma;
        }
    }
    SimdLevel::Scalar
}

pub fn level_name() -> &'static str {
    match level() {
        SimdLevel::Avx512 => "avx512",
        SimdLevel::Avx2Fma => "avx2+fma",
        SimdLevel::Scalar if cfg!(target_feature = "relaxed-simd") => "wasm-relaxed-simd",
        SimdLevel::Scalar if cfg!(target_feature = "simd128") => "wasm-simd128",
        SimdLevel::Scalar => "scalar",
    }
}

/// Defines a function whose body is compiled three times (AVX-512, AVX2+FMA, portable) and
/// dispatched on `simd::level()`. Generic parameters let one body serve every op kernel.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($g:ident : $bound:path),*>)? ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])* $vis fn $name $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            unsafe fn avx512 $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? { portable $(::<$($g),*>)? ($($arg),*) }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2 $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? { portable $(::<$($g),*>)? ($($arg),*) }

            match $crate::simd::level() {
                // SAFETY: the level is only ever set to what the CPU reports.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::SimdLevel::Avx512 => unsafe { avx512 $(::<$($g),*>)? ($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::simd::SimdLevel::Avx2Fma => unsafe { avx2 $(::<$($g),*>)? ($($arg),*) },
                _ => portable $(::<$($g),*>)? ($($arg),*),
            }
        }
    };
}
