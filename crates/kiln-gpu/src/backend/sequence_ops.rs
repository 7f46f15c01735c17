//! The Transformer and RNN family on the GPU: kiln-core's attention and recurrent ops reach the
//! kernels of kernels/attention.rs and kernels/recurrent.rs here (see mod.rs).

use super::GpuBackend;
use crate::kernels::attention as att;
use crate::kernels::recurrent::{self as rec, GpuWeights, Workspace};
use crate::tensor::GpuTensor;
use kiln_core::device::RecurrentWorkspace;
use kiln_core::ops::{AttentionOptions, Cell, Weights};
use kiln_core::params::recurrent::{Grads, Needs};
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

/// What the GPU's recurrent forward keeps for BPTT: the forward's inputs (detached views, no
/// copy) and the kernels' workspace (gates, hs, cs), as tensors so that memory() counts them.
struct Saved {
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
    gates: Tensor,
    hs: Tensor,
    cs: Option<Tensor>,
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

#[allow(clippy::too_many_arguments)]
pub fn recurrent(b: &GpuBackend, cell: Cell, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, w: &Weights, reverse: bool, keep: bool) -> Result<(Tensor, Option<RecurrentWorkspace>)> {
    let held = Held::new(b, w)?;
    let c0 = c0.map(|c| b.gpu(c)).transpose()?;
    let (out, ws) = rec::recurrent(b.device(), cell, &b.gpu(x)?, &b.gpu(h0)?, c0.as_ref(), &held.weights(), reverse)?;
    let saved = keep.then(|| {
        let detach = |t: Option<&Tensor>| t.map(Tensor::detach);
        Box::new(Saved {
            x: x.detach(),
            w_ih: w.w_ih.detach(),
            w_hh: w.w_hh.detach(),
            b_ih: detach(w.b_ih),
            b_hh: detach(w.b_hh),
            gates: b.wrap(ws.gates),
            hs: b.wrap(ws.hs),
            cs: ws.cs.map(|c| b.wrap(c)),
        }) as RecurrentWorkspace
    });
    Ok((b.wrap(out), saved))
}

pub fn recurrent_backward(b: &GpuBackend, cell: Cell, workspace: RecurrentWorkspace, g: &Tensor, reverse: bool, needs: Needs) -> Result<Grads> {
    let saved = workspace
        .downcast::<Saved>()
        .map_err(|_| KilnError::new(cell.name(), "internal error: BPTT on the GPU got another device's workspace"))?;
    let weights = Weights { w_ih: &saved.w_ih, w_hh: &saved.w_hh, b_ih: saved.b_ih.as_ref(), b_hh: saved.b_hh.as_ref() };
    let held = Held::new(b, &weights)?;
    let ws = Workspace { gates: b.gpu(&saved.gates)?, hs: b.gpu(&saved.hs)?, cs: saved.cs.as_ref().map(|c| b.gpu(c)).transpose()? };
    let grads = rec::recurrent_backward(b.device(), cell, &b.gpu(&saved.x)?, &held.weights(), &ws, &b.gpu(g)?, reverse, needs)?;
    let wrap = |t: Option<GpuTensor>| t.map(|t| b.wrap(t));
    Ok(Grads { x: wrap(grads.x), h0: wrap(grads.h0), c0: wrap(grads.c0), w_ih: wrap(grads.w_ih), w_hh: wrap(grads.w_hh), b_ih: wrap(grads.b_ih), b_hh: wrap(grads.b_hh) })
}
