//! The sizes of this x86-64 CPU's level-1 data and level-2 caches, read from CPUID once, for
//! kernels whose blocking or choice depends on them (nchwc/kernel.rs's chunks of filters,
//! gemm_avx512::chooses). The machines Kiln is measured on change under it: the same VM came up
//! as a Zen 4 (32 KiB L1d, 1 MiB L2) one day and a Xeon (48 KiB, 2 MiB) another, and a chunk
//! size tuned on one read 5% slower on the other.

/// Bytes of one core's L1 data cache, or None where CPUID does not say (a leaf the CPU or the
/// hypervisor leaves empty).
pub fn l1_data_bytes() -> Option<usize> {
    static BYTES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| read_cache_bytes(1, DATA).or_else(read_amd_l1_data_bytes))
}

/// Bytes of one core's L2 cache, or None where CPUID does not say.
pub fn l2_bytes() -> Option<usize> {
    static BYTES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| read_cache_bytes(2, UNIFIED))
}

/// Cache types of the deterministic cache parameters leaves.
const DATA: u32 = 1;
const UNIFIED: u32 = 3;

/// The size of the cache of this `level` and type from the deterministic cache parameters.
fn read_cache_bytes(level: u32, kind_wanted: u32) -> Option<usize> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // The deterministic cache parameters: leaf 4 (Intel), 0x8000001D (AMD), the same layout;
    // a leaf above the maximum the CPU reports is not asked.
    let max_basic = __cpuid(0).eax;
    let max_extended = __cpuid(0x8000_0000).eax;
    for leaf in [4, 0x8000_001D] {
        let available = if leaf < 0x8000_0000 { max_basic >= leaf } else { max_extended >= leaf };
        if !available {
            continue;
        }
        for index in 0..8 {
            let r = __cpuid_count(leaf, index);
            let kind = r.eax & 0x1f;
            if kind == 0 {
                break;
            }
            if kind == kind_wanted && (r.eax >> 5) & 0x7 == level {
                let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
                let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
                let line = (r.ebx & 0xfff) as usize + 1;
                let sets = r.ecx as usize + 1;
                return Some(ways * partitions * line * sets);
            }
        }
    }
    None
}

/// AMD's older leaf: the L1d's KiB in ECX[31:24].
fn read_amd_l1_data_bytes() -> Option<usize> {
    use std::arch::x86_64::__cpuid;
    if __cpuid(0x8000_0000).eax >= 0x8000_0005 {
        let kib = (__cpuid(0x8000_0005).ecx >> 24) as usize;
        if kib > 0 {
            return Some(kib * 1024);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn l1_data_cache_is_plausible_where_known() {
        if let Some(bytes) = super::l1_data_bytes() {
            assert!((8 * 1024..=1024 * 1024).contains(&bytes), "L1d of {bytes} bytes");
        }
    }

    #[test]
    fn l2_cache_is_plausible_where_known() {
        if let Some(bytes) = super::l2_bytes() {
            assert!((64 * 1024..=64 * 1024 * 1024).contains(&bytes), "L2 of {bytes} bytes");
        }
    }
}
