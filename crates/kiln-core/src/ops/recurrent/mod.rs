//! Recurrent layers (Elman RNN, LSTM, GRU) as one op per layer and direction over a whole
//! sequence, in PyTorch's formulation and weight layout, so its state dicts load unchanged.
//!
//! Why one op per sequence and not one per time step: the input projection of every step is one
//! big GEMM, each step is one small GEMM plus one fused pass over the gates, and the backward
//! pass (full BPTT) runs in Rust as one autograd node: a training step crosses the JS boundary
//! once per layer and direction instead of a dozen times per time step.
//!
//! The op has several results (the output sequence and the final states) but autograd nodes have
//! one output, so they come packed in one tensor `[batch, steps + states, hidden]`: rows
//! `0..steps` are the output sequence, row `steps` the final hidden state, and for an LSTM row
//! `steps + 1` the final cell state. Callers take views of it (slices keep the gradient path).
//!
//! This file validates, dispatches once and records the autograd node. The kernels live under
//! the device: on the CPU device/cpu/recurrent/ (the time loop, the per-step product with W_hh
//! packed once per sequence, the fused gate math), on the GPU kiln-gpu's kernels/recurrent.rs.
//! What forward keeps for BPTT is the device's own value (`device::RecurrentWorkspace`), owned
//! by the autograd node until backward consumes it.

use crate::autograd;
use crate::device;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::params::recurrent::{Needs, Present};
use crate::tensor::Tensor;

pub use crate::params::recurrent::{Cell, Weights};

/// Runs one layer in one direction over a whole sequence.
///
/// x [batch, steps, input] (batch first), h0 [batch, hidden], c0 [batch, hidden] (LSTM only,
/// None otherwise) -> packed [batch, steps + states, hidden] (see the module comment). With
/// `reverse` the steps run from the last time step to the first (the backward direction of a
/// bidirectional layer); the output at time t is still in row t.
pub fn recurrent(cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, weights: &Weights, reverse: bool) -> Result<Tensor> {
    validate(cell, x, h0, c0, weights)?;
    // Every input, in the order the backward closure returns gradients.
    let mut inputs: Vec<&Tensor> = vec![x, h0];
    inputs.extend(c0);
    inputs.extend([weights.w_ih, weights.w_hh]);
    inputs.extend(weights.b_ih);
    inputs.extend(weights.b_hh);
    let dev = device::dispatch(cell.name(), &inputs)?;
    let tracked = autograd::is_enabled() && inputs.iter().any(|t| t.requires_grad());
    let (out, workspace) = dev.recurrent(cell, x, h0, c0, weights, reverse, tracked)?;
    if !tracked {
        return Ok(out);
    }
    // A missing workspace would be a silently missing gradient: refuse instead.
    let workspace = workspace.ok_or_else(|| KilnError::new(cell.name(), format!("internal error: the {} device kept no workspace for BPTT", dev.name())))?;
    let present = Present { c0: c0.is_some(), b_ih: weights.b_ih.is_some(), b_hh: weights.b_hh.is_some() };
    // The workspace moves into the closure rather than `saved`: BPTT may overwrite it in place
    // (the CPU does), which needs ownership. It holds no autograd state, so the graph stays acyclic.
    Ok(autograd::record(cell.name(), &inputs, &[], out, move |g, _saved, needs| {
        let grads = dev.recurrent_backward(cell, workspace, g, reverse, Needs::from_inputs(needs, present))?;
        Ok(grads.in_input_order(present))
    }))
}

/// Checks dtypes and shapes against x and w_hh. Every message names the cell, the tensor and
/// the shape it expected.
fn validate(cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, w: &Weights) -> Result<()> {
    let op = cell.name();
    let named: Vec<(&str, &Tensor)> = [("x", Some(x)), ("h0", Some(h0)), ("c0", c0), ("wIh", Some(w.w_ih)), ("wHh", Some(w.w_hh)), ("bIh", w.b_ih), ("bHh", w.b_hh)]
        .into_iter()
        .filter_map(|(n, t)| t.map(|t| (n, t)))
        .collect();
    for (name, t) in &named {
        if t.dtype() != DType::F32 {
            return Err(KilnError::new(op, format!("{name} must be float32, got {} {}", t.dtype(), fmt_shape(t.shape()))));
        }
    }
    if x.rank() != 3 {
        return Err(KilnError::new(op, format!("x must be [batch, steps, inputSize], got {}", fmt_shape(x.shape()))));
    }
    let (batch, steps, input) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    if w.w_hh.rank() != 2 || w.w_hh.shape()[1] == 0 || w.w_hh.shape()[0] != cell.gates() * w.w_hh.shape()[1] {
        return Err(KilnError::new(op, format!(
            "wHh must be [{} * hiddenSize, hiddenSize] ({} gate blocks), got {}",
            cell.gates(), cell.gates(), fmt_shape(w.w_hh.shape())
        )));
    }
    let hidden = w.w_hh.shape()[1];
    if batch == 0 || steps == 0 || input == 0 {
        return Err(KilnError::new(op, format!("x [batch, steps, inputSize] must have no zero dimension, got {}", fmt_shape(x.shape()))));
    }
    let gh = cell.gates() * hidden;
    let expect = |name: &str, t: Option<&Tensor>, want: &[usize]| -> Result<()> {
        match t {
            Some(t) if t.shape() != want => Err(KilnError::new(op, format!(
                "{name} must be {} (x {}, hiddenSize {hidden}), got {}",
                fmt_shape(want), fmt_shape(x.shape()), fmt_shape(t.shape())
            ))),
            _ => Ok(()),
        }
    };
    expect("wIh", Some(w.w_ih), &[gh, input])?;
    expect("bIh", w.b_ih, &[gh])?;
    expect("bHh", w.b_hh, &[gh])?;
    expect("h0", Some(h0), &[batch, hidden])?;
    match (cell, c0) {
        (Cell::Lstm, None) => return Err(KilnError::new(op, "an LSTM needs an initial cell state c0 [batch, hiddenSize]")),
        (Cell::Lstm, c0) => expect("c0", c0, &[batch, hidden])?,
        (_, Some(c)) => return Err(KilnError::new(op, format!("only an LSTM takes a cell state c0, got one of shape {}", fmt_shape(c.shape())))),
        _ => {}
    }
    Ok(())
}
