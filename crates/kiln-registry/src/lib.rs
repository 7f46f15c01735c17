//! Live tensors, addressed from JavaScript by small integer handles, shared by the N-API addon
//! (bindings/node) and the WASM module (bindings/wasm). The boundary stays flat (numbers in,
//! numbers out), which keeps a call cheap; JS owns the lifetime and calls `dispose`.
//!
//! The high bit of a handle marks a tensor whose buffer is at least `LARGE_BYTES`: the engine
//! registers only those with its FinalizationRegistry (the safety net for forgotten tensors),
//! because registering costs ~200 ns, more than a whole small op.
//!
//! Handles arrive from JS as numbers. `handle` and `optional_handle` (handle.rs) are the only
//! way a number becomes a handle: a fraction, NaN or a value outside u32 is an error naming the
//! entry and the argument, never truncated into some other live tensor's handle.

mod handle;
mod in_place;

pub use handle::{handle, name_entry, optional_handle, UNNAMED};
pub use in_place::{batch_norm, optimizer_step};

use kiln_core::{KilnError, Tensor};
use std::cell::RefCell;

pub const LARGE_FLAG: u32 = 1 << 31;
const LARGE_BYTES: usize = 4096;

#[derive(Default)]
pub struct Registry {
    slots: Vec<Option<Tensor>>,
    free: Vec<u32>,
    live: usize,
}

thread_local! {
    // Node calls the addon from one JS thread per isolate; each worker thread gets its own table.
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// The error for a handle that names no live tensor. Its op is `UNNAMED`: the boundary replaces
/// it with the entry the user called (`name_entry`).
fn not_live(handle: u32) -> KilnError {
    KilnError::new(UNNAMED, format!("tensor handle {handle} is not live (was the tensor disposed?)"))
}

// #[inline] on the per-call functions: the bindings call them from other crates, where a small
// non-generic function is not inlined without it (the add-4 bench row measures this path).
impl Registry {
    #[inline]
    pub fn get(&self, handle: u32) -> Result<&Tensor, KilnError> {
        self.slots.get((handle & !LARGE_FLAG) as usize).and_then(|s| s.as_ref()).ok_or_else(|| not_live(handle))
    }

    /// Replaces the tensor behind a live handle (used to turn on requiresGrad in place).
    pub fn replace(&mut self, handle: u32, t: Tensor) -> Result<(), KilnError> {
        match self.slots.get_mut((handle & !LARGE_FLAG) as usize).and_then(|s| s.as_mut()) {
            Some(s) => {
                *s = t;
                Ok(())
            }
            None => Err(not_live(handle)),
        }
    }

    /// Moves a tensor out of its slot for in-place work; `put_back` must follow.
    pub fn take(&mut self, handle: u32) -> Result<Tensor, KilnError> {
        self.slots.get_mut((handle & !LARGE_FLAG) as usize).and_then(|s| s.take()).ok_or_else(|| not_live(handle))
    }

    /// Returns a tensor moved out by `take` to its slot (which `take` left in place, empty).
    pub fn put_back(&mut self, handle: u32, t: Tensor) {
        self.slots[(handle & !LARGE_FLAG) as usize] = Some(t);
    }

    #[inline]
    pub fn insert(&mut self, t: Tensor) -> u32 {
        self.live += 1;
        let flag = if t.storage_bytes() >= LARGE_BYTES { LARGE_FLAG } else { 0 };
        flag | match self.free.pop() {
            Some(h) => {
                self.slots[h as usize] = Some(t);
                h
            }
            None => {
                self.slots.push(Some(t));
                (self.slots.len() - 1) as u32
            }
        }
    }

    #[inline]
    pub fn remove(&mut self, handle: u32) -> bool {
        let handle = handle & !LARGE_FLAG;
        match self.slots.get_mut(handle as usize).and_then(|s| s.take()) {
            Some(_) => {
                self.free.push(handle);
                self.live -= 1;
                true
            }
            None => false,
        }
    }

    pub fn live(&self) -> usize {
        self.live
    }
}

#[inline]
pub fn with<T>(f: impl FnOnce(&Registry) -> T) -> T {
    REGISTRY.with(|r| f(&r.borrow()))
}

#[inline]
pub fn with_mut<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    REGISTRY.with(|r| f(&mut r.borrow_mut()))
}

/// Registers a tensor and returns its new handle.
#[inline]
pub fn register(t: Tensor) -> u32 {
    with_mut(|r| r.insert(t))
}

/// Clones the tensors behind `handles` (cheap: tensors share their buffers).
pub fn resolve_all(handles: &[u32]) -> Result<Vec<Tensor>, KilnError> {
    with(|r| handles.iter().map(|&h| r.get(h).cloned()).collect())
}

/// Resolves handles, runs `f`, registers its result.
#[inline]
pub fn with_tensors<const N: usize>(handles: [u32; N], f: impl FnOnce([&Tensor; N]) -> Result<Tensor, KilnError>) -> Result<u32, KilnError> {
    let out = with(|r| {
        let mut ts: [Option<&Tensor>; N] = [None; N];
        for (slot, &h) in ts.iter_mut().zip(&handles) {
            *slot = Some(r.get(h)?);
        }
        f(ts.map(|t| t.expect("every slot was filled above")))
    })?;
    Ok(register(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disposed_handle_is_not_live_and_its_slot_is_reused() {
        let t = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let h = register(t.clone());
        assert!(with(|r| r.get(h).is_ok()));
        assert!(with_mut(|r| r.remove(h)));
        assert!(!with_mut(|r| r.remove(h)), "a second dispose reports false");
        let err = with(|r| r.get(h).map(|_| ()).unwrap_err());
        assert_eq!(name_entry(err, "relu").to_string(), format!("relu: tensor handle {h} is not live (was the tensor disposed?)"));
        assert_eq!(register(t), h, "the freed slot is reused");
    }
}
