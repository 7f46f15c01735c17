//! Ops that update registry tensors in place: the tensors are moved out of their slots for the
//! update (so they can be borrowed mutably) and always put back, also when the op fails.

use crate::{with, with_mut, LARGE_FLAG};
use kiln_core::{KilnError, Tensor};

/// An optimizer step on a parameter and its state tensors (momentum, moments, ...).
pub fn optimizer_step(rule: kiln_core::optim::Rule, transform: kiln_core::optim::GradTransform, param: u32, grad: u32, state: &[u32]) -> Result<bool, KilnError> {
    let grad = with(|r| r.get(grad).cloned())?;
    with_mut(|r| {
        let mut p = r.take(param)?;
        let mut taken = Vec::with_capacity(state.len());
        for &h in state {
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

/// Batch normalization; the running statistics (both or neither) update in place when training.
pub fn batch_norm(x: u32, weight: Option<u32>, bias: Option<u32>, running_mean: Option<u32>, running_var: Option<u32>, options: kiln_core::ops::BatchNorm) -> Result<Tensor, KilnError> {
    const OP: &str = "batchNorm";
    let optional = |h: Option<u32>| h.map(|h| with(|r| r.get(h).cloned())).transpose();
    let x = with(|r| r.get(x).cloned())?;
    let (weight, bias) = (optional(weight)?, optional(bias)?);
    match (running_mean, running_var) {
        (None, None) => kiln_core::ops::batch_norm(&x, weight.as_ref(), bias.as_ref(), None, options),
        (Some(m), Some(v)) => {
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
