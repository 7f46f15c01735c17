//! Owned element buffers, shared between views through `Arc`. Live buffers and bytes are counted
//! globally so that `kiln.memory()` can prove memory stays flat.

use crate::dtype::DType;
use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static LIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// High-water mark of LIVE_BYTES since the last `reset_peak_bytes`.
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
/// In-place writes so far to watched buffers (`Storage::watch`, Tensor::watch_writes).
static WATCHED_WRITES: AtomicU64 = AtomicU64::new(0);

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
    /// Forms computed from the buffer once and kept beside it (a quantized weight's kernel
    /// layout): freed with the buffer, and dropped by `buffer_mut` before any in-place write.
    derived: Mutex<Vec<Derived>>,
    /// Whether in-place writes of this buffer's tensors are counted (`watch`).
    watched: AtomicBool,
}

/// One derived form: which kind, of which view, and the bytes it holds (counted as live).
struct Derived {
    key: DerivedKey,
    value: Arc<dyn Any + Send + Sync>,
    bytes: usize,
}

/// What a derived form was made from: its type, the view (offset, shape, strides), and the
/// maker's own parameters (`tag`: a format, a kernel size).
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedKey {
    pub kind: TypeId,
    pub view: Vec<usize>,
    pub tag: Vec<usize>,
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
        Storage { buffer, derived: Mutex::new(Vec::new()), watched: AtomicBool::new(false) }
    }

    /// Counts the in-place writes of this buffer's tensors from now on (`watched_writes`), for
    /// callers that keep forms of their own computed from its values (the ONNX importer's
    /// folded BatchNormalization, packed filters) and must know when to compute them again.
    pub fn watch(&self) {
        self.watched.store(true, Ordering::Relaxed);
    }

    pub fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// The buffer for an in-place write: derived forms of the old values are dropped first.
    pub fn buffer_mut(&mut self) -> &mut Buffer {
        self.clear_derived();
        &mut self.buffer
    }

    /// The form stored under `key`, or `make()`'s (value, bytes it holds), stored for next time.
    /// `make` runs without the lock held (it may use the thread pool); if two threads race, both
    /// compute and the first stored form wins.
    pub fn derived<T: Any + Send + Sync, E>(&self, key: DerivedKey, make: impl FnOnce() -> Result<(T, usize), E>) -> Result<Arc<T>, E> {
        let find = |list: &Vec<Derived>| list.iter().find(|d| d.key == key).and_then(|d| d.value.clone().downcast::<T>().ok());
        if let Some(found) = find(&*self.derived.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(found);
        }
        let (value, bytes) = make()?;
        let mut list = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&*list) {
            return Ok(found);
        }
        let value = Arc::new(value);
        add_live_bytes(bytes);
        list.push(Derived { key, value: value.clone(), bytes });
        Ok(value)
    }

    fn clear_derived(&mut self) {
        let list = self.derived.get_mut().unwrap_or_else(|e| e.into_inner());
        for d in list.drain(..) {
            LIVE_BYTES.fetch_sub(d.bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.clear_derived();
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

/// In-place writes so far to the tensors of watched buffers (`Storage::watch`): a caller that
/// kept something computed from watched tensors compares it with the count it saw then.
pub fn watched_writes() -> u64 {
    WATCHED_WRITES.load(Ordering::Relaxed)
}

/// Records one in-place write of a watched tensor.
pub(crate) fn count_watched_write() {
    WATCHED_WRITES.fetch_add(1, Ordering::Relaxed);
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

    /// `n` floats that are not zeroed, for a kernel that writes each before it reads it (no pass
    /// over the memory before the kernel's own stores), or an error naming `op`.
    ///
    /// # Safety
    /// Every float is written before it is read: the memory is uninitialized (f32 has no invalid
    /// bit patterns, as for alloc::try_filled_by's slices).
    pub unsafe fn unwritten(op: &str, n: usize) -> crate::error::Result<Scratch> {
        let mut data = crate::alloc::try_with_capacity::<f32>(op, n)?;
        data.set_len(n);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn key(tag: usize) -> DerivedKey {
        DerivedKey { kind: TypeId::of::<Vec<u8>>(), view: vec![0, 4, 1], tag: vec![tag] }
    }

    #[test]
    fn a_derived_form_is_made_once_per_key_and_dropped_by_an_in_place_write() {
        let mut s = Storage::new(Buffer::F32(vec![1.0; 4]));
        let made = Cell::new(0);
        let make = |v: u8| {
            made.set(made.get() + 1);
            Ok::<_, ()>((vec![v; 3], 3))
        };
        let a = s.derived(key(1), || make(7)).unwrap();
        let b = s.derived(key(1), || make(8)).unwrap();
        assert_eq!((made.get(), &*a, Arc::ptr_eq(&a, &b)), (1, &vec![7u8; 3], true));
        assert_eq!(*s.derived(key(2), || make(9)).unwrap(), vec![9u8; 3], "another tag is another form");
        assert_eq!(made.get(), 2);
        assert_eq!(s.derived::<Vec<u8>, ()>(key(1), || Err(())), Ok(a.clone()), "found without making");
        s.buffer_mut();
        assert_eq!(*s.derived(key(1), || make(5)).unwrap(), vec![5u8; 3], "remade after a write");
        assert_eq!(made.get(), 3);
        // A failed make stores nothing.
        assert!(s.derived::<Vec<u8>, ()>(key(3), || Err(())).is_err());
        assert_eq!(*s.derived(key(3), || make(6)).unwrap(), vec![6u8; 3]);
    }
}
