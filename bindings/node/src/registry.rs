//! Live tensors, addressed from JavaScript by small integer handles. The boundary stays flat
//! (numbers in, numbers out), which keeps a call cheap; JS owns the lifetime and calls `dispose`.
//!
//! The high bit of a handle marks a tensor whose buffer is at least `LARGE_BYTES`: the engine
//! registers only those with its FinalizationRegistry (the safety net for forgotten tensors),
//! because registering costs ~200 ns, more than a whole small op.

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

impl Registry {
    pub fn get(&self, handle: u32) -> Result<&Tensor, KilnError> {
        self.slots
            .get((handle & !LARGE_FLAG) as usize)
            .and_then(|s| s.as_ref())
            .ok_or_else(|| KilnError::new("kiln", format!("tensor handle {handle} is not live (was the tensor disposed?)")))
    }

    /// Replaces the tensor behind a live handle (used to turn on requiresGrad in place).
    pub fn replace(&mut self, handle: u32, t: Tensor) -> Result<(), KilnError> {
        let slot = self.slots.get_mut((handle & !LARGE_FLAG) as usize).and_then(|s| s.as_mut());
        match slot {
            Some(s) => {
                *s = t;
                Ok(())
            }
            None => Err(KilnError::new("kiln", format!("tensor handle {handle} is not live (was the tensor disposed?)"))),
        }
    }

    /// Moves a tensor out of its slot for in-place work; `put_back` must follow.
    pub fn take(&mut self, handle: u32) -> Result<Tensor, KilnError> {
        self.slots
            .get_mut((handle & !LARGE_FLAG) as usize)
            .and_then(|s| s.take())
            .ok_or_else(|| KilnError::new("kiln", format!("tensor handle {handle} is not live (was the tensor disposed?)")))
    }

    pub fn put_back(&mut self, handle: u32, t: Tensor) {
        self.slots[(handle & !LARGE_FLAG) as usize] = Some(t);
    }

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

pub fn with<T>(f: impl FnOnce(&Registry) -> T) -> T {
    REGISTRY.with(|r| f(&r.borrow()))
}

pub fn with_mut<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    REGISTRY.with(|r| f(&mut r.borrow_mut()))
}

/// Runs an in-place optimizer step on registry tensors: the parameter and its state are moved
/// out of their slots for the update (so they can be borrowed mutably) and always put back.
/// `state` holds the state handles (negative entries mean "none"). Shared by both bindings.
pub fn optimizer_step(rule: kiln_core::optim::Rule, transform: kiln_core::optim::GradTransform, param: u32, grad: u32, state: &[f64]) -> Result<bool, KilnError> {
    let state: Vec<u32> = state.iter().filter(|&&h| h >= 0.0).map(|&h| h as u32).collect();
    let grad = with(|r| r.get(grad).cloned())?;
    with_mut(|r| {
        let mut p = r.take(param)?;
        let mut taken = Vec::with_capacity(state.len());
        for &h in &state {
            match r.take(h) {
                Ok(t) => taken.push(t),
                Err(e) => {
                    for (&h, t) in state.iter().zip(taken) {
                        r.put_back(h, t);
                    }
                    r.put_back(param, p);
                    return Err(e);
                }
            }
        }
        let result = kiln_core::optim::step(rule, transform, &mut p, &grad, &mut taken);
        for (&h, t) in state.iter().zip(taken) {
            r.put_back(h, t);
        }
        r.put_back(param, p);
        result.map(|_| true)
    })
}

// ---- CNN: batch normalization with in-place running statistics (batch_norm.rs) ----

/// Batch normalization on registry tensors. `weight`, `bias`, `running_mean`, `running_var` are
/// handles or negative for "none"; the running statistics are moved out of their slots for the
/// in-place update (like optimizer_step) and always put back. Shared by both bindings.
pub fn batch_norm(x: u32, weight: f64, bias: f64, running_mean: f64, running_var: f64, options: kiln_core::ops::BatchNorm) -> Result<Tensor, KilnError> {
    const OP: &str = "batchNorm";
    let optional = |h: f64| if h < 0.0 { Ok(None) } else { with(|r| r.get(h as u32).cloned()).map(Some) };
    let x = with(|r| r.get(x).cloned())?;
    let (weight, bias) = (optional(weight)?, optional(bias)?);
    match (running_mean >= 0.0, running_var >= 0.0) {
        (false, false) => kiln_core::ops::batch_norm(&x, weight.as_ref(), bias.as_ref(), None, options),
        (true, true) => {
            let (m, v) = (running_mean as u32, running_var as u32);
            if m & !LARGE_FLAG == v & !LARGE_FLAG {
                return Err(KilnError::new(OP, "runningMean and runningVar must be two different tensors"));
            }
            with_mut(|r| {
                let mut mean = r.take(m)?;
                let mut var = match r.take(v) {
                    Ok(t) => t,
                    Err(e) => {
                        r.put_back(m, mean);
                        return Err(e);
                    }
                };
                let result = kiln_core::ops::batch_norm(&x, weight.as_ref(), bias.as_ref(), Some((&mut mean, &mut var)), options);
                r.put_back(m, mean);
                r.put_back(v, var);
                result
            })
        }
        _ => Err(KilnError::new(OP, "runningMean and runningVar must be given together (or neither)")),
    }
}
