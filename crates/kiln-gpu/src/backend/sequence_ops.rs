//! The Transformer and RNN family on the GPU: kiln-core's attention and recurrent ops reach the
//! kernels of kernels/attention.rs and kernels/recurrent.rs here (see mod.rs).

use super::GpuBackend;
use crate::kernels::attention as att;
use crate::kernels::recurrent::{self as rec, GpuWeights, Workspace};
use crate::tensor::GpuTensor;
use kiln_core::ops::{AttentionOptions, Cell, Weights};
use kiln_core::{KilnError, Result, Tensor};

/// The padding mask as the kernels' additive bias.
fn bias(b: &GpuBackend, mask: Option<&Tensor>) -> Result<Option<GpuTensor>> {
    mask.map(|m| att::padding_bias(b.device(), &b.gpu(m)?)).transpose()
}

pub fn attention(b: &GpuBackend, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<(Tensor, Tensor)> {
    let fwd = att::attention(b.device(), &b.gpu(q)?, &b.gpu(k)?, &b.gpu(v)?, bias(b, mask)?.as_ref(), options)?;
    Ok((b.wrap(fwd.out), b.wrap(fwd.lse)))
}

#[allow(clippy::too_many_arguments)]
pub fn attention_backward(b: &GpuBackend, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, out: &Tensor, lse: &Tensor, g: &Tensor, options: &AttentionOptions) -> Result<[Tensor; 3]> {
    let saved = att::AttentionForward { out: b.gpu(out)?, lse: b.gpu(lse)? };
    let grads = att::attention_backward(b.device(), &b.gpu(q)?, &b.gpu(k)?, &b.gpu(v)?, bias(b, mask)?.as_ref(), &saved, &b.gpu(g)?, options)?;
    Ok([b.wrap(grads.q), b.wrap(grads.k), b.wrap(grads.v)])
}

/// The weights as GpuTensors (owned views; GpuWeights borrows them).
struct Held {
    w_ih: GpuTensor,
    w_hh: GpuTensor,
    b_ih: Option<GpuTensor>,
    b_hh: Option<GpuTensor>,
}

impl Held {
    fn new(b: &GpuBackend, w: &Weights) -> Result<Held> {
        let opt = |t: Option<&Tensor>| t.map(|t| b.gpu(t)).transpose();
        Ok(Held { w_ih: b.gpu(w.w_ih)?, w_hh: b.gpu(w.w_hh)?, b_ih: opt(w.b_ih)?, b_hh: opt(w.b_hh)? })
    }

    fn weights(&self) -> GpuWeights<'_> {
        GpuWeights { w_ih: &self.w_ih, w_hh: &self.w_hh, b_ih: self.b_ih.as_ref(), b_hh: self.b_hh.as_ref() }
    }
}

pub fn recurrent(b: &GpuBackend, cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, w: &Weights, reverse: bool) -> Result<(Tensor, Vec<Tensor>)> {
    let held = Held::new(b, w)?;
    let c0 = c0.map(|c| b.gpu(c)).transpose()?;
    let (out, ws) = rec::recurrent(b.device(), cell, &b.gpu(x)?, &b.gpu(h0)?, c0.as_ref(), &held.weights(), reverse)?;
    let mut workspace = vec![b.wrap(ws.gates), b.wrap(ws.hs)];
    workspace.extend(ws.cs.map(|c| b.wrap(c)));
    Ok((b.wrap(out), workspace))
}

pub fn recurrent_backward(b: &GpuBackend, cell: Cell, x: &Tensor, w: &Weights, workspace: &[Tensor], g: &Tensor, reverse: bool) -> Result<Vec<Tensor>> {
    let held = Held::new(b, w)?;
    let ws = match workspace {
        [gates, hs, rest @ ..] if rest.len() <= 1 => Workspace { gates: b.gpu(gates)?, hs: b.gpu(hs)?, cs: rest.first().map(|c| b.gpu(c)).transpose()? },
        _ => return Err(KilnError::new(cell.name(), "internal error: not a GPU recurrent workspace")),
    };
    let grads = rec::recurrent_backward(b.device(), cell, &b.gpu(x)?, &held.weights(), &ws, &b.gpu(g)?, reverse)?;
    let mut out = vec![b.wrap(grads.x), b.wrap(grads.h0)];
    out.extend(grads.c0.map(|t| b.wrap(t)));
    out.extend([b.wrap(grads.w_ih), b.wrap(grads.w_hh)]);
    out.extend(grads.b_ih.map(|t| b.wrap(t)));
    out.extend(grads.b_hh.map(|t| b.wrap(t)));
    Ok(out)
}
