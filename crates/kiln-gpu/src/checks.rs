//! Index checks without a readback per op. kiln-core rejects an out-of-range index (gather,
//! scatterAdd, oneHot, crossEntropy targets, graph edge lists) by reading the indices on the host;
//! on the device that would stall the queue on every call. Instead the kernel clamps the index
//! (so it never reads or writes outside a buffer) and records the first bad one in a small
//! per-device error buffer; the next readback or synchronize reads that buffer in the same
//! round trip as its data and returns the error, naming the op that saw the bad index.
//!
//! Each checked dispatch registers a message here and gets an id, which travels to the kernel as
//! the last word of its parameter block (launch.rs appends it); the kernel writes [1, id, bad value, position] into the error buffer with
//! a compare-exchange, so the first report wins and later ones are dropped.

use kiln_core::KilnError;
use std::sync::Mutex;

/// Size of the error buffer: [flag, check id, bad value (as i32 bits), position].
pub(crate) const ERROR_BYTES: u64 = 16;

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

    /// Interprets the error words read back after the checks `covered` ran: retires those checks
    /// and turns a report into the op's error. The caller clears the flag on error.
    pub fn resolve(&self, covered: &[u64], words: [u32; 4]) -> Option<KilnError> {
        let mut p = lock(&self.pending);
        let report = (words[0] != 0).then(|| {
            let found = p.1.iter().find(|c| c.seq as u32 == words[1]);
            match found {
                Some(c) => {
                    let second = words[3] >> 31 == 1;
                    let template = c.template.split(OR_SECOND).nth(second as usize).unwrap_or(&c.template);
                    let position = (words[3] & 0x7fff_ffff).to_string();
                    let message = template.replace("{value}", &(words[2] as i32).to_string()).replace("{position}", &position);
                    KilnError::new(&c.op, format!("{message} (found on the GPU; reported at the next read)"))
                }
                None => KilnError::new("gpu", format!("an index {} was out of range in an earlier GPU op", words[2] as i32)),
            }
        });
        p.1.retain(|c| !covered.contains(&c.seq));
        report
    }
}

/// WGSL for a kernel that checks indices: the error buffer at `binding`, `report(value,
/// position)`, and `checked(value, bound, position) -> u32`, which returns the index clamped into
/// [0, bound) and reports it when it was outside. The check's id is parameter word `id_word`.
pub(crate) fn wgsl(binding: u32, id_word: usize) -> String {
    format!(
        "@group(0) @binding({binding}) var<storage, read_write> index_error: array<atomic<u32>>;
const SECOND: u32 = 0x80000000u;
fn report(value: i32, position: u32) {{
  loop {{
    let r = atomicCompareExchangeWeak(&index_error[0], 0u, 1u);
    if (r.exchanged) {{
      atomicStore(&index_error[1], params[{id_word}u]);
      atomicStore(&index_error[2], bitcast<u32>(value));
      atomicStore(&index_error[3], position);
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
