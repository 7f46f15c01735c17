//! The recurrent layers on the CPU (`Cpu`'s `recurrent` and `recurrent_backward`): the time
//! loop and its GEMMs (sequence.rs), the per-step product with W_hh packed once per sequence
//! (step_gemm.rs) and the fused per-step gate math (cells.rs).
//!
//! The workspace forward keeps is `Saved`: the step-major activations and states, and the
//! weights as the kernels read them (contiguous, W_hh packed). BPTT takes it by value and
//! overwrites the gate activations with their gradients in place, so they need no second buffer.

pub(crate) mod cells;
mod sequence;
mod step_gemm;

use crate::device::RecurrentWorkspace;
use crate::error::{KilnError, Result};
use crate::params::recurrent::{Cell, Grads, Needs, Weights};
use crate::tensor::Tensor;
use sequence::{Dims, Params, Workspace};

/// What the CPU's forward keeps for BPTT.
struct Saved {
    dims: Dims,
    workspace: Workspace,
    params: Params,
}

/// One layer and direction over the sequence (shapes checked by ops/recurrent): the packed
/// output, and with `keep` the workspace for `backward`.
pub(crate) fn forward(cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, weights: &Weights, reverse: bool, keep: bool) -> Result<(Tensor, Option<RecurrentWorkspace>)> {
    let &[batch, steps, input] = x.shape() else {
        return Err(KilnError::new(cell.name(), "internal error: x is not [batch, steps, inputSize]"));
    };
    let dims = Dims { batch, steps, input, hidden: weights.w_hh.shape()[1] };
    let params = Params::new(cell, weights)?;
    let c0 = c0.map(|c| c.materialize()).transpose()?;
    let (out, workspace) = sequence::forward(cell, dims, reverse, &x.materialize()?, &h0.materialize()?, c0.as_ref(), &params)?;
    let saved = keep.then(|| Box::new(Saved { dims, workspace, params }) as RecurrentWorkspace);
    Ok((out, saved))
}

/// BPTT from `forward`'s workspace and the packed output's gradient `g`.
pub(crate) fn backward(cell: Cell, workspace: RecurrentWorkspace, g: &Tensor, reverse: bool, needs: Needs) -> Result<Grads> {
    let saved = workspace
        .downcast::<Saved>()
        .map_err(|_| KilnError::new(cell.name(), "internal error: BPTT on the CPU got another device's workspace"))?;
    let Saved { dims, workspace, params } = *saved;
    sequence::backward(cell, dims, reverse, workspace, &g.materialize()?, &params, needs)
}
