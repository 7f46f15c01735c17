//! Owned element buffers, shared between views through `Arc`. Live buffers and bytes are counted
//! globally so that `kiln.memory()` can prove memory stays flat.

use crate::dtype::DType;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// High-water mark of LIVE_BYTES since the last `reset_peak_bytes`.
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

pub enum Buffer {
    F32(Vec<f32>),
    I32(Vec<i32>),
    /// Booleans as 0/1 bytes.
    Bool(Vec<u8>),
    /// Signed bytes: quantized weights (ops/quant.rs), two int4 values per byte when packed.
    I8(Vec<i8>),
    /// Memory on another device (the GPU): only that device's kernels read it (device.rs).
    Device(Box<dyn crate::device::DeviceBuffer>),
}

pub struct Storage {
    pub buffer: Buffer,
}

impl Buffer {
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::I32(_) => DType::I32,
            Buffer::Bool(_) => DType::Bool,
            Buffer::I8(_) => DType::I8,
            Buffer::Device(b) => b.dtype(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::Bool(v) => v.len(),
            Buffer::I8(v) => v.len(),
            Buffer::Device(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn size_bytes(&self) -> usize {
        self.len() * self.dtype().size_bytes()
    }
}

impl Storage {
    pub fn new(buffer: Buffer) -> Storage {
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        add_live_bytes(buffer.size_bytes());
        Storage { buffer }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(self.buffer.size_bytes(), Ordering::Relaxed);
    }
}

/// (live buffers, live bytes) over the whole process.
pub fn live_memory() -> (usize, usize) {
    (LIVE_BUFFERS.load(Ordering::Relaxed), LIVE_BYTES.load(Ordering::Relaxed))
}

/// Counts `n` more live bytes and raises the peak if needed. The peak is only written when it
/// grows (a plain load otherwise), so the common path costs one atomic add, as before.
fn add_live_bytes(n: usize) {
    let now = LIVE_BYTES.fetch_add(n, Ordering::Relaxed) + n;
    if now > PEAK_BYTES.load(Ordering::Relaxed) {
        PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
    }
}

/// The most bytes live at once (tensor buffers and kernel scratch) since the last reset: how a
/// test shows an op's working memory, which `live_memory` after the op cannot see.
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed).max(LIVE_BYTES.load(Ordering::Relaxed))
}

/// Starts a new peak measurement from the bytes live now.
pub fn reset_peak_bytes() {
    PEAK_BYTES.store(LIVE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Working memory of a kernel (float32, zeroed): not a tensor, but counted in the live bytes (and
/// so in the peak) while it exists, so memory tests see a kernel's whole working set.
pub struct Scratch {
    data: Vec<f32>,
}

impl Scratch {
    /// `n` zeros, or an error naming `op` if the memory cannot be had.
    pub fn zeroed(op: &str, n: usize) -> crate::error::Result<Scratch> {
        let data = try_zeroed::<f32>(op, n)?;
        add_live_bytes(n * 4);
        Ok(Scratch { data })
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.data.len() * 4, Ordering::Relaxed);
    }
}

// Fallible allocation lives in alloc.rs (one rule for every user-sized buffer); these names
// stay here for the kernels that import them from storage.
pub use crate::alloc::{try_filled, try_zeroed};

/// Element types that can live in a Buffer; lets shape ops be written once for every dtype.
pub trait Element: Copy + Send + Sync + 'static {
    fn wrap(v: Vec<Self>) -> Buffer;
    fn slice(b: &Buffer) -> Option<&[Self]>;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            fn wrap(v: Vec<Self>) -> Buffer {
                Buffer::$variant(v)
            }
            fn slice(b: &Buffer) -> Option<&[Self]> {
                match b {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
element!(f32, F32);
element!(i32, I32);
element!(u8, Bool);
element!(i8, I8);
