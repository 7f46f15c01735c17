//! Index checks without a readback per op. kiln-core rejects an out-of-range index (gather,
//! scatterAdd, oneHot, crossEntropy targets, graph edge lists) by reading the indices on the host;
//! on the device that would stall the queue on every call. Instead the kernel clamps the index
//! (so it never reads or writes outside a buffer) and records the first bad one in a small
//! per-device error buffer; the next readback or synchronize reads that buffer in the same
//! round trip as its data and returns the error, naming the op that saw the bad index.
//!
//! Each checked dispatch registers a message here and gets an id, which travels to the kernel as
//! the last word of its parameter block (launch.rs appends it); the kernel writes [1, id, bad value,
//! position] into its slot of the error buffer (slot = id % SLOTS) with a compare-exchange, so the
//! first report in a slot wins.
//!
//! Why slots, not one report for the whole device: on WebGPU reads are asynchronous, so two may be
//! in flight at once (`expectThrows(a); expectThrows(b)` each awaiting a synchronize). With one
//! report, b's kernel found it taken by a's bad index and dropped its own, and the second read saw
//! a's report again after the first had retired a's check: "an index was out of range in an
//! earlier GPU op", without b's name. With a slot per check, each read reports the earliest
//! pending check that failed, leaves later failed checks pending for the next read, and ignores
//! reports of checks already retired.

use kiln_core::KilnError;
use std::sync::Mutex;

/// Report slots; checks more than SLOTS apart share one (the earlier report wins).
const SLOTS: u64 = 64;
/// Size of the error buffer: per slot [flag, check id, bad value (as i32 bits), position].
pub(crate) const ERROR_BYTES: u64 = SLOTS * 16;

/// Separates a check's two messages when one kernel checks two index lists (spmm's src and
/// dst): the kernel sets bit 31 of the position it reports (`SECOND` in WGSL) to pick the second.
pub(crate) const OR_SECOND: &str = "\u{1f}";

/// The message of one checked dispatch: `template` with `{value}` and `{position}` replaced by
/// what the kernel reported. `submitted` once its kernel is on the queue: only then does a later
/// readback see its result, and only then may that readback retire it.
struct Check {
    seq: u64,
    op: String,
    template: String,
    submitted: bool,
}

pub(crate) struct IndexChecks {
    buffer: wgpu::Buffer,
    /// The next sequence number and the checks not yet retired by a readback.
    pending: Mutex<(u64, Vec<Check>)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl IndexChecks {
    pub fn new(device: &wgpu::Device) -> IndexChecks {
        // wgpu zero-initializes new buffers: the flag starts clear.
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln index errors"),
            size: ERROR_BYTES,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        IndexChecks { buffer, pending: Mutex::new((0, Vec::new())) }
    }

    /// Registers a checked dispatch of `op` about to be submitted; returns its sequence number
    /// (the kernel reports its low 32 bits).
    pub fn register(&self, op: &str, template: String) -> u64 {
        let mut p = lock(&self.pending);
        let seq = p.0;
        p.0 += 1;
        p.1.push(Check { seq, op: op.to_string(), template, submitted: false });
        seq
    }

    /// The dispatch of check `seq` was submitted (`ok`) or failed (then it can report nothing).
    pub fn finish(&self, seq: u64, ok: bool) {
        let mut p = lock(&self.pending);
        if ok {
            p.1.iter_mut().filter(|c| c.seq == seq).for_each(|c| c.submitted = true);
        } else {
            p.1.retain(|c| c.seq != seq);
        }
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The checks submitted so far, which a readback submitted now will cover; None when there
    /// are none (then the readback need not look at the error buffer).
    pub fn submitted(&self) -> Option<Vec<u64>> {
        let p = lock(&self.pending);
        let seqs: Vec<u64> = p.1.iter().filter(|c| c.submitted).map(|c| c.seq).collect();
        (!seqs.is_empty()).then_some(seqs)
    }

    /// Interprets the error words (`ERROR_BYTES / 4` of them) read back after the checks
    /// `covered` ran. Reports the earliest covered check that found a bad index, and the byte
    /// offset of its slot, which the caller clears. Retires it and every covered check that found
    /// none; other failed checks stay pending for the next read.
    pub fn resolve(&self, covered: &[u64], words: &[u32]) -> Option<(KilnError, u64)> {
        resolve_pending(&mut lock(&self.pending).1, covered, words)
    }
}

/// `IndexChecks::resolve` on the list of pending checks.
fn resolve_pending(pending: &mut Vec<Check>, covered: &[u64], words: &[u32]) -> Option<(KilnError, u64)> {
    // Reports whose check is covered and not yet retired (others are stale copies).
    let failed: Vec<(u64, usize)> = words
        .chunks_exact(4)
        .enumerate()
        .filter(|(_, w)| w[0] != 0)
        .filter_map(|(slot, w)| covered.iter().find(|&&seq| seq as u32 == w[1] && pending.iter().any(|c| c.seq == seq)).map(|&seq| (seq, slot)))
        .collect();
    let first = failed.iter().min_by_key(|(seq, _)| *seq).copied();
    let report = first.and_then(|(seq, slot)| {
        let c = pending.iter().find(|c| c.seq == seq)?;
        let w = &words[slot * 4..slot * 4 + 4];
        let second = w[3] >> 31 == 1;
        let template = c.template.split(OR_SECOND).nth(second as usize).unwrap_or(&c.template);
        let position = (w[3] & 0x7fff_ffff).to_string();
        let message = template.replace("{value}", &(w[2] as i32).to_string()).replace("{position}", &position);
        Some((KilnError::new(&c.op, format!("{message} (found on the GPU; reported at the next read)")), slot as u64 * 16))
    });
    let keep = |seq: u64| failed.iter().any(|&(s, _)| s == seq) && first.map(|(s, _)| s) != Some(seq);
    pending.retain(|c| !covered.contains(&c.seq) || keep(c.seq));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(seq: u64, op: &str) -> Check {
        Check { seq, op: op.into(), template: format!("index {{value}} out of range in {op}"), submitted: true }
    }

    /// The error words with reports [1, id, value, position] in the slots of `reports`.
    fn words(reports: &[(u64, i32)]) -> Vec<u32> {
        let mut w = vec![0u32; (ERROR_BYTES / 4) as usize];
        for &(seq, value) in reports {
            let s = (seq % SLOTS) as usize * 4;
            w[s..s + 4].copy_from_slice(&[1, seq as u32, value as u32, 0]);
        }
        w
    }

    #[test]
    fn two_reads_in_flight_each_name_their_own_op() {
        // Checks 0 (gather) and 1 (oneHot) both failed; two reads copied the errors before either
        // resolved, so both see both reports.
        let mut pending = vec![check(0, "gather"), check(1, "oneHot")];
        let seen = words(&[(0, 9), (1, 5)]);
        let (first, slot) = resolve_pending(&mut pending, &[0, 1], &seen).unwrap();
        assert_eq!((first.op.as_str(), first.message.starts_with("index 9 ")), ("gather", true), "{first}");
        assert_eq!(slot, 0);
        let (second, slot) = resolve_pending(&mut pending, &[0, 1], &seen).unwrap();
        assert_eq!((second.op.as_str(), second.message.starts_with("index 5 ")), ("oneHot", true), "{second}");
        assert_eq!(slot, 16);
        assert!(pending.is_empty());
        // A third read of the same stale words reports nothing.
        assert!(resolve_pending(&mut pending, &[], &seen).is_none());
    }

    #[test]
    fn checks_without_a_report_retire_and_later_ones_wait_for_their_read() {
        let mut pending = vec![check(3, "gather"), check(4, "spmm"), check(5, "oneHot")];
        // Only 3 and 4 ran before this read; 4 failed.
        let (err, _) = resolve_pending(&mut pending, &[3, 4], &words(&[(4, -1)])).unwrap();
        assert_eq!(err.op, "spmm");
        assert_eq!(pending.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![5]);
        assert!(resolve_pending(&mut pending, &[5], &words(&[])).is_none());
        assert!(pending.is_empty());
    }
}

/// WGSL for a kernel that checks indices: the error buffer at `binding`, `report(value,
/// position)` (into the check's slot), and `checked(value, bound, position) -> u32`, which
/// returns the index clamped into [0, bound) and reports it when it was outside. The check's id
/// is parameter word `id_word`.
pub(crate) fn wgsl(binding: u32, id_word: usize) -> String {
    format!(
        "@group(0) @binding({binding}) var<storage, read_write> index_error: array<atomic<u32>>;
const SECOND: u32 = 0x80000000u;
fn report(value: i32, position: u32) {{
  let s = (params[{id_word}u] % {SLOTS}u) * 4u;
  loop {{
    let r = atomicCompareExchangeWeak(&index_error[s], 0u, 1u);
    if (r.exchanged) {{
      atomicStore(&index_error[s + 1u], params[{id_word}u]);
      atomicStore(&index_error[s + 2u], bitcast<u32>(value));
      atomicStore(&index_error[s + 3u], position);
      return;
    }}
    if (r.old_value != 0u) {{ return; }}
  }}
}}
fn checked(value: i32, bound: u32, position: u32) -> u32 {{
  if (value < 0 || u32(value) >= bound) {{
    report(value, position);
    return select(0u, bound - 1u, value > 0 && bound > 0u);
  }}
  return u32(value);
}}
"
    )
}
