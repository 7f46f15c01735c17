//! Live tensors, addressed from JavaScript by small integer handles. The boundary stays flat
//! (numbers in, numbers out), which keeps a call cheap; JS owns the lifetime and calls `dispose`.

use kiln_core::{KilnError, Tensor};
use std::cell::RefCell;

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

impl Registry {
    pub fn get(&self, handle: u32) -> Result<&Tensor, KilnError> {
        self.slots
            .get(handle as usize)
            .and_then(|s| s.as_ref())
            .ok_or_else(|| KilnError::new("kiln", format!("tensor handle {handle} is not live (was the tensor disposed?)")))
    }

    pub fn insert(&mut self, t: Tensor) -> u32 {
        self.live += 1;
        match self.free.pop() {
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

    pub fn remove(&mut self, handle: u32) -> bool {
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

pub fn with<T>(f: impl FnOnce(&Registry) -> T) -> T {
    REGISTRY.with(|r| f(&r.borrow()))
}

pub fn with_mut<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    REGISTRY.with(|r| f(&mut r.borrow_mut()))
}
