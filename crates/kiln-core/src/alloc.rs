//! Every buffer whose size comes from user input is allocated here, so one rule holds everywhere:
//! the byte size is checked arithmetic, a request the process cannot get is an Error
//! "cannot allocate N bytes for OP", never an abort of the whole process (Rust's infallible
//! allocation aborts, which crashes Node) and never a page-by-page march into the OOM killer.
//!
//! The second part matters on Linux, which overcommits: calloc of 30 GB on a 24 GB machine
//! succeeds, and the process is killed only when the kernel writes the pages. So a large request
//! is first compared with what the process can actually get (available_bytes).

use crate::error::{KilnError, Result};
use crate::storage::Element;

/// Requests below this are not compared with the available memory: reading /proc costs a few
/// microseconds, nothing next to filling 64 MiB, everything next to a small op.
const CHECK_ABOVE_BYTES: usize = 64 << 20;

fn cannot_allocate(op: &str, bytes: u128, why: &str) -> KilnError {
    KilnError::new(op, format!("cannot allocate {bytes} bytes for {op}: {why}"))
}

/// The byte size of `n` elements of T, computed wide so that the message is right even when it
/// does not fit in usize (wasm32).
fn wide_bytes<T>(n: usize) -> u128 {
    n as u128 * std::mem::size_of::<T>() as u128
}

/// glibc's malloc serves a large request with a fresh mmap and unmaps it on free, and gives the
/// top of its heaps back to the kernel when the free space there passes a threshold; both
/// thresholds move at run time with the order of frees. A training step frees and reallocates the
/// same few-megabyte buffers every step, so whether they come back from the heap or as fresh pages
/// depends on that history: measured on the cnn-train step (bench/cnn-stability.mjs), 8,300 minor
/// page faults per step (34 MB of pages the kernel maps and zeroes, both threads contending for the
/// process's memory map), 56 ms of CPU per step (p10-p90 47-75 ms); with fixed thresholds 0 faults
/// and 41 ms (38-46 ms). So the thresholds are fixed, once, before Kiln's first allocation:
/// buffers under 256 MiB are reused from the heap, and up to 256 MiB of free heap stays mapped.
/// GLIBC_TUNABLES with glibc.malloc settings, when set, win (the user chose).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_buffers_mapped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
            return;
        }
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        const THRESHOLD: std::ffi::c_int = 256 << 20;
        // SAFETY: mallopt only sets malloc's parameters; a refused value leaves them unchanged.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, THRESHOLD);
            mallopt(M_TRIM_THRESHOLD, THRESHOLD);
        }
    });
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_buffers_mapped() {}

/// The byte size of `n` elements of T, or the Error for a size that does not fit in memory at
/// all; large sizes are also checked against what the process can get.
pub fn checked_bytes<T>(op: &str, n: usize) -> Result<usize> {
    keep_buffers_mapped();
    let elem = std::mem::size_of::<T>();
    let bytes = n
        .checked_mul(elem)
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| cannot_allocate(op, wide_bytes::<T>(n), &format!("more than this {}-bit build can address", usize::BITS)))?;
    if bytes >= CHECK_ABOVE_BYTES {
        if let Some(available) = available_bytes() {
            if bytes as u64 > available {
                return Err(cannot_allocate(
                    op,
                    bytes as u128,
                    &format!("the process can get about {available} bytes now (MemAvailable and the cgroup limit); refused rather than left to the OOM killer"),
                ));
            }
        }
    }
    Ok(bytes)
}

/// A zero-filled Vec of `n` elements. Zeroed memory comes from calloc, so large outputs cost no
/// extra pass over memory before the kernel writes them.
pub fn try_zeroed<T: Element>(op: &str, n: usize) -> Result<Vec<T>> {
    let bytes = checked_bytes::<T>(op, n)?;
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| cannot_allocate(op, bytes as u128, "too large"))?;
    // SAFETY: layout has non-zero size; all-zero bits are a valid f32, i32, u8 and i8 (the only
    // Element types), and the allocation matches what Vec<T> would make for capacity n.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut T;
        if ptr.is_null() {
            return Err(cannot_allocate(op, bytes as u128, "out of memory"));
        }
        Ok(Vec::from_raw_parts(ptr, n, n))
    }
}

/// A Vec of `n` elements that `write` fills, given the Vec's uninitialized memory: an output a
/// kernel writes completely skips calloc's zeroing pass (4 MiB for a 1024 matmul, 3 MiB for
/// bench conv2d-a's output: as much memory traffic as the kernel's own stores).
///
/// # Safety
/// When `write` returns Ok it must have written all `n` elements through the pointer.
pub unsafe fn try_written<T: Element>(op: &str, n: usize, write: impl FnOnce(*mut T) -> Result<()>) -> Result<Vec<T>> {
    let mut v = try_with_capacity::<T>(op, n)?;
    write(v.as_mut_ptr())?;
    // SAFETY: capacity >= n, and `write` wrote every element (the caller's promise).
    v.set_len(n);
    Ok(v)
}

/// `try_written` for kernels that fill a slice: `fill` gets the `n` elements as a slice and must
/// store to every one of them without reading any (an elementwise map, a pooling kernel whose
/// stores cover its output). The slice views memory that is not yet initialized; f32, i32, u8
/// and i8 (the Element types) have no invalid bit patterns, and nothing reads it before `fill`
/// has written it.
///
/// # Safety
/// `fill` writes every element of the slice and reads none before writing it.
pub unsafe fn try_filled_by<T: Element>(op: &str, n: usize, fill: impl FnOnce(&mut [T])) -> Result<Vec<T>> {
    try_written(op, n, |ptr| {
        fill(std::slice::from_raw_parts_mut(ptr, n));
        Ok(())
    })
}

/// `n` copies of `value`.
pub fn try_filled<T: Element + PartialEq + Default>(op: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_zeroed(op, n)?;
    if value != T::default() {
        v.iter_mut().for_each(|x| *x = value);
    }
    Ok(v)
}

/// An empty Vec with room for `n` elements of any type (scratch of indices, f64 statistics).
pub fn try_with_capacity<T>(op: &str, n: usize) -> Result<Vec<T>> {
    let bytes = checked_bytes::<T>(op, n)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| cannot_allocate(op, bytes as u128, "out of memory"))?;
    Ok(v)
}

/// `n` copies of `value` for any Clone type (f64 statistics, index lists).
pub fn try_vec<T: Clone>(op: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_with_capacity(op, n)?;
    v.resize(n, value);
    Ok(v)
}

/// `f` applied to every element of `src`, into a Vec allocated here (casts, conversions).
pub fn try_map<A: Copy, B>(op: &str, src: &[A], f: impl Fn(A) -> B) -> Result<Vec<B>> {
    let mut out = try_with_capacity(op, src.len())?;
    out.extend(src.iter().map(|&a| f(a)));
    Ok(out)
}

/// A copy of `src`.
pub fn try_copy<T: Copy>(op: &str, src: &[T]) -> Result<Vec<T>> {
    try_map(op, src, |a| a)
}

/// What this process can still get, in bytes: the smaller of the system's MemAvailable (not
/// MemTotal: page cache that cannot be dropped and other processes' memory are not ours) and the
/// room left under the cgroup's limit (containers). None where neither is known (not Linux, WASM).
pub fn available_bytes() -> Option<u64> {
    let system = meminfo_available();
    let cgroup = cgroup_room();
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn read(path: &str) -> Option<String> {
    if cfg!(target_arch = "wasm32") {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn meminfo_available() -> Option<u64> {
    let text = read("/proc/meminfo")?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// cgroup v2 (memory.max - memory.current), else v1 (limit_in_bytes - usage_in_bytes).
fn cgroup_room() -> Option<u64> {
    let number = |path: &str| read(path).and_then(|s| s.trim().parse::<u64>().ok());
    let (limit, usage) = match number("/sys/fs/cgroup/memory.max") {
        Some(limit) => (limit, number("/sys/fs/cgroup/memory.current")?),
        // "max" (no limit) does not parse: fall through to v1, which reports a huge number then.
        None => (number("/sys/fs/cgroup/memory/memory.limit_in_bytes")?, number("/sys/fs/cgroup/memory/memory.usage_in_bytes")?),
    };
    Some(limit.saturating_sub(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_the_address_space_are_errors() {
        let e = try_zeroed::<f32>("cast", usize::MAX / 2).unwrap_err().to_string();
        assert!(e.contains("cannot allocate") && e.contains("for cast"), "{e}");
    }

    #[test]
    fn more_than_the_process_can_get_is_refused_before_allocating() {
        let available = available_bytes().expect("Linux reports MemAvailable");
        let n = (available / 4 + (1 << 30)) as usize;
        let e = try_zeroed::<f32>("zeros", n).unwrap_err().to_string();
        assert!(e.contains(&format!("cannot allocate {} bytes for zeros", n * 4)) && e.contains("OOM killer"), "{e}");
        assert_eq!(try_filled::<i32>("zeros", 3, 7).unwrap(), vec![7, 7, 7]);
    }
}
