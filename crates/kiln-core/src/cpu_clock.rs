//! CPU time for measurements (the GEMM examples, gemm_avx512's `anatomy` test): clock_gettime's
//! process and thread CPU clocks, exact for a running thread, where /proc's schedstat files
//! advance only at scheduler ticks (too coarse for calls of a few milliseconds). On a machine
//! other processes share, CPU time is the figure that holds still. Linux; 0 elsewhere.

/// On-CPU nanoseconds of every thread of this process so far.
pub fn process_ns() -> u64 {
    read(2) // CLOCK_PROCESS_CPUTIME_ID
}

/// On-CPU nanoseconds of the calling thread so far.
pub fn thread_ns() -> u64 {
    read(3) // CLOCK_THREAD_CPUTIME_ID
}

#[cfg(target_os = "linux")]
fn read(clock: i32) -> u64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: ts is a valid timespec for the call to fill.
    unsafe { clock_gettime(clock, &mut ts) };
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn read(_clock: i32) -> u64 {
    0
}
