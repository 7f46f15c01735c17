//! Fused attention on the CPU, tiled as FlashAttention: softmax(QKᵀ·scale + masks)·V block by
//! block with an online softmax (forward.rs), the backward recomputing each block from the saved
//! row log-normalizers (backward.rs); tile.rs holds the block products, layout.rs where results
//! live. Arguments are checked by ops/attention.rs; the dropout seed arrives resolved.

mod backward;
mod forward;
mod layout;
pub(crate) mod tile;

use crate::error::{fmt_shape, KilnError, Result};
use crate::dtype::DType;
use crate::params::attention::{AttentionOptions, Tiles};
use crate::storage::try_zeroed;
use crate::tensor::Tensor;
use layout::Layout;
use tile::{DropoutMask, Operand, Problem};

const OP: &str = "attention";

/// The sizes of a checked problem.
struct Dims {
    batch: usize,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
}

impl Dims {
    fn of(q: &Tensor, k: &Tensor, v: &Tensor) -> Dims {
        let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
        Dims { batch: qs[0], heads: qs[1], tq: qs[2], tk: ks[2], d: qs[3], dv: vs[3] }
    }
}

/// The padding mask as one additive bias per key, [B, Tk]: bool true -> −inf, float32 as given
/// (NaN or +inf there would silently poison whole rows, so they are rejected).
fn padding_bias(mask: &Tensor) -> Result<Tensor> {
    let bias: Vec<f32> = match mask.dtype() {
        DType::Bool => mask.elements::<u8>(OP)?.into_iter().map(|pad| if pad != 0 { f32::NEG_INFINITY } else { 0.0 }).collect(),
        _ => {
            let values = mask.elements::<f32>(OP)?;
            if let Some(i) = values.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
                let tk = mask.shape()[1];
                return Err(KilnError::new(OP, format!(
                    "the additive keyPaddingMask {} holds {} at [{}, {}]; use 0 to keep a key and -inf to mask it",
                    fmt_shape(mask.shape()), values[i], i / tk, i % tk
                )));
            }
            values
        }
    };
    Tensor::from_vec(bias, mask.shape())
}

/// What forward and backward share: the additive bias of the mask, the scale and the dropout.
fn settings(dims: &Dims, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<(Option<Tensor>, f32, Option<DropoutMask>)> {
    let bias = mask.map(padding_bias).transpose()?;
    let scale = options.scale.unwrap_or(if dims.d == 0 { 1.0 } else { 1.0 / (dims.d as f32).sqrt() });
    let dropout = match (options.dropout > 0.0, options.seed) {
        (false, _) => None,
        (true, Some(seed)) => Some(DropoutMask::new(options.dropout, seed)),
        (true, None) => return Err(KilnError::new(OP, "internal error: dropout without a seed")),
    };
    Ok((bias, scale, dropout))
}

/// (out [B, H, Tq, Dv], lse [B, H, Tq]); see ops::attention.
pub(crate) fn forward(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, options: &AttentionOptions) -> Result<(Tensor, Tensor)> {
    let dims = Dims::of(q, k, v);
    let (bias, scale, dropout) = settings(&dims, mask, options)?;
    let (causal, tiles) = (options.causal, options.tiles);

    let out_layout = Layout::like(q, dims.tq, dims.dv);
    // SAFETY: forward::forward writes every row of out before anything reads it.
    let mut out = unsafe { out_layout.allocate_unwritten([dims.batch, dims.heads, dims.tq, dims.dv])? };
    let mut lse = Tensor::from_vec(try_zeroed::<f32>(OP, dims.batch * dims.heads * dims.tq)?, &[dims.batch, dims.heads, dims.tq])?;
    {
        let problem = make_problem(q, k, v, bias.as_ref(), &dims, causal, scale, dropout, tiles)?;
        forward::forward(&problem, out_layout, out.data_mut_f32(OP)?, lse.data_mut_f32(OP)?)?;
    }
    Ok((out_layout.finish(out)?, lse))
}

/// The gradients of q, k and v (see Device::attention_backward).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, out: &Tensor, lse: &Tensor, g: &Tensor, options: &AttentionOptions) -> Result<[Tensor; 3]> {
    let dims = Dims::of(q, k, v);
    let (bias, scale, dropout) = settings(&dims, mask, options)?;
    let problem = make_problem(q, k, v, bias.as_ref(), &dims, options.causal, scale, dropout, options.tiles)?;
    let lse = lse.cpu_slice::<f32>(OP)?;
    let [dq, dk, dv] = backward_pass(&problem, &dims, out, lse, g, [q, k, v], &[true; 3])?;
    match (dq, dk, dv) {
        (Some(dq), Some(dk), Some(dv)) => Ok([dq, dk, dv]),
        _ => Err(KilnError::new(OP, "internal error: a gradient was not computed")),
    }
}

#[allow(clippy::too_many_arguments)]
fn make_problem<'a>(q: &'a Tensor, k: &'a Tensor, v: &'a Tensor, bias: Option<&'a Tensor>, dims: &Dims, causal: bool, scale: f32, dropout: Option<DropoutMask>, tiles: Tiles) -> Result<Problem<'a>> {
    Ok(Problem {
        q: Operand::of(q, OP)?,
        k: Operand::of(k, OP)?,
        v: Operand::of(v, OP)?,
        bias: bias.map(|b| b.cpu_slice::<f32>(OP)).transpose()?,
        causal,
        dropout,
        scale,
        batch: dims.batch,
        heads: dims.heads,
        tq: dims.tq,
        tk: dims.tk,
        d: dims.d,
        dv: dims.dv,
        tiles,
    })
}

/// The gradients of q, k and v that `needs` asks for.
fn backward_pass(p: &Problem, dims: &Dims, out: &Tensor, lse: &[f32], g: &Tensor, inputs: [&Tensor; 3], needs: &[bool]) -> Result<[Option<Tensor>; 3]> {
    let saved = backward::Saved { out: Operand::of(out, OP)?, lse, grad: Operand::of(g, OP)? };
    let delta = backward::row_deltas(p, &saved)?;
    let [q, k, v] = inputs;
    let mut grads: [Option<Tensor>; 3] = [None, None, None];
    if needs[0] {
        let layout = Layout::like(q, dims.tq, dims.d);
        let mut dq = layout.allocate([dims.batch, dims.heads, dims.tq, dims.d])?;
        backward::grad_q(p, &saved, &delta, layout, dq.data_mut_f32(OP)?)?;
        grads[0] = Some(layout.finish(dq)?);
    }
    if needs[1] || needs[2] {
        let (k_layout, v_layout) = (Layout::like(k, dims.tk, dims.d), Layout::like(v, dims.tk, dims.dv));
        let mut dk = k_layout.allocate([dims.batch, dims.heads, dims.tk, dims.d])?;
        let mut dv = v_layout.allocate([dims.batch, dims.heads, dims.tk, dims.dv])?;
        backward::grad_kv(p, &saved, &delta, k_layout, v_layout, dk.data_mut_f32(OP)?, dv.data_mut_f32(OP)?)?;
        grads[1] = if needs[1] { Some(k_layout.finish(dk)?) } else { None };
        grads[2] = if needs[2] { Some(v_layout.finish(dv)?) } else { None };
    }
    Ok(grads)
}
