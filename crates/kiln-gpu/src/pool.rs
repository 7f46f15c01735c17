//! Buffers by size class, reused: a tensor's buffer goes back to its class's free list when the
//! tensor is dropped, and the next tensor of that class takes it instead of asking the driver.
//! Creating a GPU buffer costs a driver call and often a page-table update, and a training loop
//! frees and allocates the same sizes every step, so after the first step no buffer is created.
//!
//! Reuse needs no fence: every kernel and every `queue.write_buffer` goes through one queue, which
//! runs them in submission order, so a recycled buffer is only written after earlier work that
//! read it. One catch: kernels are recorded into a command encoder that is submitted in batches
//! (device.rs), while a `write_buffer` takes effect at the next submit, before that batch. So a
//! buffer dropped while a batch is being recorded is held back (`held`) until the batch is
//! submitted; otherwise an upload into it could overwrite what a recorded kernel still reads.

use crate::platform::{self, LateError};
use kiln_core::{KilnError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a pooled buffer is for; each has its own usage flags and free lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Tensor data and kernel parameters: read and written by kernels, copied in and out.
    Storage,
    /// Host-visible buffers that downloads copy into and map.
    Staging,
}

impl Kind {
    fn usage(self) -> wgpu::BufferUsages {
        match self {
            Kind::Storage => wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            Kind::Staging => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        }
    }
}

/// The smallest buffer handed out: parameter blocks and scalars all share one class.
const MIN_CLASS: u64 = 256;

/// The size class of a request: the next of 2^k · {1, 1.25, 1.5, 1.75} at or above `bytes`, so a
/// buffer wastes at most a quarter of its size (powers of two alone would waste up to half).
pub fn size_class(bytes: u64) -> u64 {
    if bytes <= MIN_CLASS {
        return MIN_CLASS;
    }
    let octave = 1u64 << (63 - bytes.leading_zeros()); // largest power of two <= bytes
    (4..=8).map(|q| octave / 4 * q).find(|&c| c >= bytes).expect("8/4 of the octave exceeds bytes")
}

/// Counts a test or `kiln.memory()` can read to prove memory stays flat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers held by tensors (or in-flight kernel parameters) right now, and their bytes.
    pub live_buffers: usize,
    pub live_bytes: u64,
    /// Buffers waiting in free lists for reuse, and their bytes.
    pub free_buffers: usize,
    pub free_bytes: u64,
    /// Buffers ever created by the driver: flat across a loop means the pool is doing its job.
    pub created: usize,
}

/// Free buffers by (kind, class), and whether a batch is being recorded.
#[derive(Default)]
struct FreeLists {
    ready: HashMap<(Kind, u64), Vec<wgpu::Buffer>>,
    /// Dropped while `recording`: free for reuse once the batch is submitted.
    held: Vec<(Kind, u64, wgpu::Buffer)>,
    recording: bool,
}

pub(crate) struct PoolInner {
    device: wgpu::Device,
    /// Where an allocation failure WebGPU reports late goes (the device's, see platform.rs).
    late: LateError,
    free: Mutex<FreeLists>,
    stats: Mutex<PoolStats>,
}

/// A buffer on loan from the pool; returns itself on drop.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    kind: Kind,
    class: u64,
    pool: Arc<PoolInner>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
    /// Bytes of the underlying buffer (the size class, at least the requested size).
    pub fn capacity(&self) -> u64 {
        self.class
    }
}

impl PooledBuffer {
    /// Destroys the buffer instead of recycling it (a failed readback may leave it mapped).
    pub fn discard(mut self) {
        if let Some(buffer) = self.buffer.take() {
            let mut stats = lock(&self.pool.stats);
            stats.live_buffers -= 1;
            stats.live_bytes -= self.class;
            drop(stats);
            buffer.destroy();
        }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let Some(buffer) = self.buffer.take() else { return };
        let mut stats = lock(&self.pool.stats);
        stats.live_buffers -= 1;
        stats.live_bytes -= self.class;
        stats.free_buffers += 1;
        stats.free_bytes += self.class;
        drop(stats);
        let mut free = lock(&self.pool.free);
        if free.recording {
            free.held.push((self.kind, self.class, buffer));
        } else {
            free.ready.entry((self.kind, self.class)).or_default().push(buffer);
        }
    }
}

/// Poisoning only means another thread panicked mid-update of plain counters or lists; the
/// data is still usable, and a GPU op must not turn that into a second panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

impl BufferPool {
    pub fn new(device: wgpu::Device, late: LateError) -> BufferPool {
        BufferPool { inner: Arc::new(PoolInner { device, late, free: Mutex::new(FreeLists::default()), stats: Mutex::new(PoolStats::default()) }) }
    }

    /// A batch of kernels is being recorded: buffers dropped from now on are held back.
    pub(crate) fn recording(&self) {
        lock(&self.inner.free).recording = true;
    }

    /// The batch was submitted: the held buffers may be reused (write_buffer now lands after it).
    pub(crate) fn submitted(&self) {
        let mut free = lock(&self.inner.free);
        free.recording = false;
        for (kind, class, buffer) in std::mem::take(&mut free.held) {
            free.ready.entry((kind, class)).or_default().push(buffer);
        }
    }

    pub fn stats(&self) -> PoolStats {
        *lock(&self.inner.stats)
    }

    /// Releases every free buffer to the driver (live ones are untouched).
    pub fn trim(&self) {
        let drained: Vec<wgpu::Buffer> = lock(&self.inner.free).ready.drain().flat_map(|(_, v)| v).collect();
        let mut stats = lock(&self.inner.stats);
        for b in &drained {
            stats.free_buffers -= 1;
            stats.free_bytes -= b.size();
        }
        drop(stats);
        drained.iter().for_each(wgpu::Buffer::destroy);
    }

    /// A buffer of at least `bytes` bytes: a recycled one if its class has any, else a new one.
    /// `max_bytes` is the device's limit for this kind; a class above it is cut down to it.
    pub fn acquire(&self, op: &str, kind: Kind, bytes: u64, max_bytes: u64) -> Result<PooledBuffer> {
        let class = size_class(bytes).min(max_bytes / 4 * 4).max(bytes.next_multiple_of(4));
        let recycled = lock(&self.inner.free).ready.get_mut(&(kind, class)).and_then(Vec::pop);
        let buffer = match recycled {
            Some(b) => {
                let mut stats = lock(&self.inner.stats);
                stats.free_buffers -= 1;
                stats.free_bytes -= class;
                b
            }
            None => match self.create(kind, class) {
                Ok(b) => b,
                // Out of memory: give the cached free buffers back to the driver and try once more.
                Err(_) => {
                    self.trim();
                    self.create(kind, class).map_err(|e| KilnError::new(op, format!(
                        "cannot allocate a GPU buffer of {bytes} bytes: {e}"
                    )))?
                }
            },
        };
        let mut stats = lock(&self.inner.stats);
        stats.live_buffers += 1;
        stats.live_bytes += class;
        Ok(PooledBuffer { buffer: Some(buffer), kind, class, pool: self.inner.clone() })
    }

    /// Creates a buffer, with driver failures (out of memory) caught as an error, not a panic
    /// (on WebGPU the error arrives after this returns, and the next op reports it).
    fn create(&self, kind: Kind, size: u64) -> std::result::Result<wgpu::Buffer, String> {
        let device = &self.inner.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor { label: Some("kiln"), size, usage: kind.usage(), mapped_at_creation: false });
        if let Some(e) = platform::pop_scopes("allocate", [oom, validation], &self.inner.late) {
            buffer.destroy();
            return Err(e.to_string());
        }
        lock(&self.inner.stats).created += 1;
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_waste_at_most_a_quarter() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(1024), 1024);
        assert_eq!(size_class(1025), 1280);
        assert_eq!(size_class(1800), 2048);
        for bytes in (1..100_000u64).step_by(37) {
            let c = size_class(bytes);
            assert!(c >= bytes && c.is_multiple_of(4), "{bytes} -> {c}");
            assert!(bytes <= 256 || (c as f64) < bytes as f64 * 1.25 + 1.0, "{bytes} -> {c}");
        }
    }
}
